"""Shared fixtures: every test runs in its own working directory, offline."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """SQLite stores default to the working directory: keep each test's apart."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.delenv("MMBENCH_DISABLE_PLUGINS", raising=False)
    monkeypatch.delenv("MMBENCH_DATA", raising=False)
    yield work


@pytest.fixture
def registry():
    """A freshly loaded registry of the installed plugins."""
    from mmbench.registry import load_registry

    return load_registry()


@pytest.fixture
def stores(tmp_path):
    """Optuna storage and MLflow tracking URIs in the test's temp dir."""
    return {"storage": f"sqlite:///{tmp_path / 'optuna.db'}", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}
