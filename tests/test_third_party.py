"""The example third-party plugin (examples/third_party_plugin), installed as a user would install it.

tox installs it in ``commands_pre``; by hand: ``pip install --no-deps -e examples/third_party_plugin``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest

from mmbench.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "third_party_plugin"


def run_cli(*args: str, env_extra: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    import os

    env = {**os.environ, **(env_extra or {})}
    return subprocess.run([sys.executable, "-m", "mmbench.cli", *args], capture_output=True, text=True, timeout=600, env=env)


@pytest.fixture(scope="module", autouse=True)
def installed():
    try:
        metadata.distribution("mmbench-example-plugin")
    except metadata.PackageNotFoundError:
        pytest.fail(f"the example plugin is not installed: pip install --no-deps -e {EXAMPLE}")


def test_it_shows_in_mmbench_plugins():
    result = run_cli("plugins", "--format", "json")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert {"name": "example", "distribution": "mmbench-example-plugin", "version": "0.1.0"} in listing["plugins"]
    mine = {(c["kind"], c["name"]): c for c in listing["components"] if c["plugin"] == "example"}
    assert set(mine) == {
        ("encoder", "embedding.gated"), ("fusion", "example_sum"), ("dataset", "example_blobs"),
        ("modality", "timeseries"), ("encoder", "timeseries.conv1d"), ("dataset", "example_waves"),
    }
    assert mine[("encoder", "timeseries.conv1d")]["modality"] == "timeseries"
    assert mine[("encoder", "embedding.gated")]["modality"] == "embedding"
    assert mine[("encoder", "embedding.gated")]["hyperparameters"] == {"width": "int[8, 64] log", "dropout": "float[0, 0.3]"}
    assert mine[("dataset", "example_blobs")]["options"]["n_samples"].startswith("rows to generate")


def test_disabling_it_removes_it_and_its_task():
    result = run_cli("plugins", "--format", "json", env_extra={"MMBENCH_DISABLE_PLUGINS": "example"})
    assert result.returncode == 0, result.stderr
    assert "example" not in {p["name"] for p in json.loads(result.stdout)["plugins"]}
    result = run_cli("search", "example-blobs", env_extra={"MMBENCH_DISABLE_PLUGINS": "example"})
    assert result.returncode == 2 and "unknown task 'example-blobs'" in result.stderr


@pytest.mark.slow
def test_mmbench_search_uses_its_task_fusion_and_encoder(stores):
    result = run_cli(
        "search", "example-blobs", "--n-trials", "2", "--max-epochs", "1", "--no-plots", "--quiet",
        "--fusions", "example_sum", "--encoders", "x1=embedding.gated", "--encoders", "x2=embedding.gated",
        "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"],
    )
    assert result.returncode == 0, result.stderr
    import optuna

    study = optuna.load_study(study_name="example-blobs", storage=stores["storage"])
    assert len(study.trials) == 2 and all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    board = run_cli("leaderboard", "--format", "json", "--tracking-uri", stores["tracking_uri"])
    rows = json.loads(board.stdout)["rows"]  # beside the classical baselines a task on real data gets (--preset medium)
    (row,) = [r for r in rows if r["fusion"] == "example_sum"]
    assert row["task"] == "example-blobs" and row["n_trials"] == 2
    assert row["combination"] == "example_sum | x1=embedding.gated, x2=embedding.gated"
    assert 0.0 <= row["val_score"] <= 1.0


@pytest.mark.slow
def test_its_own_test_suite_passes_with_mmbench_testing():
    """The plugin author's workflow: their tests call mmbench.testing and pass."""
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(EXAMPLE / "tests")],
                            capture_output=True, text=True, timeout=600, cwd=EXAMPLE)
    assert result.returncode == 0, result.stdout[-3000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.slow
def test_mmbench_search_runs_on_the_modality_kind_it_adds(stores, tmp_path):
    """The plugin's ``timeseries`` kind end to end: its provider, default preprocessing, encoder and task."""
    result = run_cli(
        "search", "example-waves", "--n-trials", "1", "--max-epochs", "1", "--no-plots", "--quiet",
        "--fusions", "early", "--encoders", "embedding=embedding.mlp",
        "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"],
    )
    assert result.returncode == 0, result.stderr
    import optuna

    (trial,) = optuna.load_study(study_name="example-waves", storage=stores["storage"]).trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.user_attrs
    assert trial.user_attrs["config"]["encoders"] == {"timeseries": "timeseries.conv1d", "embedding": "embedding.mlp"}
    assert any(name.startswith("encoder.timeseries.conv1d.") for name in trial.params)
    assert 0.0 <= trial.value <= 1.0


def test_a_task_naming_an_unregistered_kind_is_a_one_line_error(tmp_path):
    task = tmp_path / "waves-without-plugin.yaml"
    task.write_text(
        "name: waves-bad-kind\ndata:\n  provider: example_waves\n  options: {n_samples: 40}\nlabel: band\n"
        "modalities: {signal: seismic}\n"
    )
    result = run_cli("search", str(task), "--n-trials", "1", "--max-epochs", "1")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "column 'signal' has unknown kind 'seismic'" in result.stderr and "timeseries" in result.stderr


def test_a_task_degrades_the_kind_it_adds_through_the_registry():
    """``data.degrade: {timeseries: [...]}`` finds the plugin kind's ``jitter`` in the registry: checked in
    the task file, applied to the kind's column only, seeded (same data every run, its own fingerprint)."""
    from mmbench.registry import get_registry
    from mmbench.tasks.files import parse_task
    from mmbench.tasks.loading import load_task_data

    def load(degrade):
        content = {"name": "waves", "label": "band", "split": {"seed": 0},
                   "data": {"provider": "example_waves", "options": {"n_samples": 40}}}
        if degrade:
            content["data"]["degrade"] = degrade
        return load_task_data(parse_task(content, source="waves.yaml"), get_registry())

    block = {"timeseries": [{"op": "jitter", "sigma": 0.5}]}
    clean, first, again, by_column = load(None), load(block), load(block), load({"signal": {"op": "jitter", "sigma": 0.5}})
    assert first.fingerprint == again.fingerprint != clean.fingerprint
    train = {name: data.splits["train"] for name, data in (("clean", clean), ("first", first), ("by_column", by_column))}
    assert train["first"]["signal"] == train["by_column"]["signal"] != train["clean"]["signal"]  # seeded per column
    assert train["first"]["context"] == train["clean"]["context"]
    noise = np.concatenate([np.subtract(d, c).ravel() for d, c in zip(train["first"]["signal"], train["clean"]["signal"])])
    assert 0.4 < float(noise.std()) < 0.6
    with pytest.raises(ConfigError, match=r"waves\.yaml: data\.degrade\.timeseries\.jitter needs sigma"):
        load({"timeseries": [{"op": "jitter"}]})
    with pytest.raises(ConfigError, match="no degradation for embedding columns; available for .*timeseries"):
        load({"context": [{"op": "jitter", "sigma": 0.5}]})
