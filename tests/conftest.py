"""Shared fixtures: every test runs in its own working directory, offline."""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import pytest

from tests.servers import mlflow_server, postgres  # noqa: F401 - session fixtures: real PostgreSQL, mlflow server

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
# the feature and media caches of this run only: no entry from a benchmark or an earlier run reaches a test
if "MMBENCH_CACHE" not in os.environ:
    os.environ["MMBENCH_CACHE"] = tempfile.mkdtemp(prefix="mmbench-test-cache-")
    atexit.register(shutil.rmtree, os.environ["MMBENCH_CACHE"], True)


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


@pytest.fixture(scope="session")
def _empty_mlflow_database(tmp_path_factory):
    """An MLflow SQLite database with its tables made: building them takes about a second of
    migrations, so each test's store starts as a copy of this one instead."""
    from mmbench.tracking.tracker import Tracker

    folder = tmp_path_factory.mktemp("mlflow-template")
    here = os.getcwd()
    os.chdir(folder)
    try:
        Tracker(f"sqlite:///{folder / 'mlflow.db'}")
    finally:
        os.chdir(here)
    return folder / "mlflow.db"


def _copy_sqlite(source: Path, target: Path) -> None:
    """A consistent copy of an SQLite file whatever its journal mode (in WAL mode the file alone
    can miss the latest commits): SQLite's own backup."""
    import sqlite3

    with contextlib.closing(sqlite3.connect(source)) as src, contextlib.closing(sqlite3.connect(target)) as dst:
        src.backup(dst)


@pytest.fixture
def stores(tmp_path, _empty_mlflow_database):
    """Optuna storage and MLflow tracking URIs in the test's temp dir (the MLflow one ready-made)."""
    _copy_sqlite(_empty_mlflow_database, tmp_path / "mlflow.db")
    return {"storage": f"sqlite:///{tmp_path / 'optuna.db'}", "tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"}


@pytest.fixture
def tiny_task(tmp_path):
    """Factory of small synthetic two-modality task files (a trial trains in well under a second)."""

    def make(name: str = "tiny", *, mode: str = "mixed", n_samples: int = 240, extra: str = ""):
        path = tmp_path / f"{name}.yaml"
        path.write_text(
            f"name: {name}\ndata:\n  provider: synthetic\n"
            f"  options: {{n_samples: {n_samples}, n_modalities: 2, dim: 4, mode: {mode}, noise: 0.2}}\n"
            "label: label\nmetric: accuracy\nsplit: {validation: 0.25, test: 0.25, seed: 0}\n"
            "search:\n  max_epochs: 2\n  patience: 2\n" + extra
        )
        return path

    return make


@pytest.fixture
def search_settings(stores):
    """Factory of ``SearchSettings`` on the test's own stores, CPU, no study plots."""
    from mmbench.search import SearchSettings

    def make(task, **overrides):
        return SearchSettings.of(**{"task": str(task), "device": "cpu", "plots": False, **stores, **overrides})

    return make


@pytest.fixture
def one_torch_thread():
    """Tiny models on a shared 2-core machine: one torch thread is faster than two contended ones."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
