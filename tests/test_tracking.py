"""What a search leaves in MLflow: parent and child runs, per-epoch metrics, failures, artifacts."""

from __future__ import annotations

import optuna
import pytest

from mmbench.search.study import run_search
from mmbench.infra.secrets import redact_url
from mmbench.tracking.tracker import Tracker


def _runs(tracking_uri: str, task: str):
    tracker = Tracker(tracking_uri)
    experiments = list(tracker.task_experiments(task))
    parent = tracker.client.search_runs(experiments, "tags.`mmbench.role` = 'study'")
    return tracker, parent, tracker.trial_runs(experiments)


def test_parent_and_child_runs_hold_the_documented_record(tiny_task, search_settings, stores):
    outcome = run_search(search_settings(tiny_task(), n_trials=3, plots=True, pruner="none", fusions=["early", "late"]))
    tracker, (parent,), runs = _runs(stores["tracking_uri"], "tiny")
    client = tracker.client

    assert parent.data.params["search.sampler"] == "tpe" and parent.data.params["data.fingerprint"]
    assert any(k.startswith("plugin.") for k in parent.data.params)
    assert parent.data.params["search.storage"] == redact_url(stores["storage"])
    parent_files = {a.path for a in client.list_artifacts(parent.info.run_id)} | {
        a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"task.yaml", "plots/optimization_history.png", "plots/parallel_coordinate.png", "plots/param_importances.png"} <= parent_files

    assert len(runs) == 3
    for run in runs:
        tags, metrics = run.data.tags, run.data.metrics
        assert tags["mlflow.parentRunId"] == parent.info.run_id
        for key in ("task", "fusion", "encoder.x1", "encoder.x2", "study", "trial", "state", "seed", "device", "fingerprint"):
            assert tags[f"mmbench.{key}"], key
        assert tags["mmbench.device"] == "cpu" and tags["mmbench.state"] == "COMPLETE"
        assert run.data.params["fusion"] == tags["mmbench.fusion"] and "train.lr" in run.data.params
        for key in ("val_accuracy", "test_accuracy", "val_score", "test_score", "n_parameters", "duration_s", "best_epoch"):
            assert key in metrics, key
        history = client.get_metric_history(run.info.run_id, "val_accuracy")
        assert sorted(m.step for m in history if m.step > 0) == [1, 2]  # step = epoch
        assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2]
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}

    best = next(r for r in runs if r.info.run_id == outcome.best_run_id)
    assert best.data.tags.get("mmbench.best") == "true"
    assert sum(r.data.tags.get("mmbench.best") == "true" for r in runs) == 1  # the model is logged once
    files = {a.path for a in client.list_artifacts(best.info.run_id)} | {a.path for a in client.list_artifacts(best.info.run_id, "model")}
    assert {"config.yaml", "confusion_matrix.png", "model/MLmodel", "model/weights.safetensors"} <= files


def test_best_model_reloads_from_safetensors_and_pytorch_flavour(tiny_task, search_settings, stores, registry, tmp_path):
    import mlflow
    import torch
    import yaml
    from safetensors.torch import load_file

    from mmbench.search.trials import TrialConfig
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.model import build_model, preprocessors_for
    from mmbench.tasks.files import resolve_task
    from mmbench.train.loop import evaluate

    task_path = tiny_task()
    outcome = run_search(search_settings(task_path, n_trials=2, pruner="none", fusions=["early"]))
    client = Tracker(stores["tracking_uri"]).client
    folder = client.download_artifacts(outcome.best_run_id, "", str(tmp_path / "best"))
    config = TrialConfig.from_dict(yaml.safe_load(open(f"{folder}/config.yaml")))
    data = load_task_data(resolve_task(str(task_path), registry), registry)
    infos, tensors = data.tensors(preprocessors_for(config, data.schema, registry))
    model = build_model(config, infos, data.schema.n_classes, registry)
    model.load_state_dict(load_file(f"{folder}/model/weights.safetensors"))
    run = client.get_run(outcome.best_run_id)
    accuracy = evaluate(model, tensors["test"], n_classes=data.schema.n_classes)["accuracy"]
    assert accuracy == pytest.approx(run.data.metrics["test_accuracy"], abs=1e-6)

    mlflow.set_tracking_uri(stores["tracking_uri"])
    try:
        flavour = mlflow.pytorch.load_model(f"runs:/{outcome.best_run_id}/model")
    finally:
        mlflow.set_tracking_uri(None)
    flavour.eval()
    inputs, _ = tensors["test"].select(torch.arange(4))
    with torch.no_grad():
        assert torch.allclose(flavour(inputs)[0], model.eval()(inputs)[0], atol=1e-6)


def test_failed_trial_is_recorded_with_state_and_reason(tiny_task, search_settings, stores):
    # an absurd learning rate makes the loss explode: the trial fails, the search goes on
    run_search(search_settings(tiny_task(), n_trials=1, fusions=["early"], fixed={"train.lr": 1e30}))
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert study.trials[0].state.name == "FAIL"
    _, _, (run,) = _runs(stores["tracking_uri"], "tiny")
    assert run.info.status == "FAILED" and run.data.tags["mmbench.state"] == "FAIL"
    assert "training loss became" in run.data.tags["mmbench.reason"]


def test_file_store_tracking_uri_works(tiny_task, search_settings, stores, tmp_path):
    uri = str(tmp_path / "mlruns")
    run_search(search_settings(tiny_task(), n_trials=1, max_epochs=1, tracking_uri=uri))
    _, parents, runs = _runs(uri, "tiny")
    assert len(parents) == 1 and len(runs) == 1


def test_sqlite_stores_run_in_write_ahead_log_mode_and_other_sqlite_files_are_left_alone(tmp_path, stores):
    import sqlite3

    import sqlalchemy

    from mmbench.search.storage import open_storage

    Tracker(stores["tracking_uri"]).client.search_experiments()
    storage = open_storage(stores["storage"])
    optuna.create_study(storage=storage, study_name="wal")
    for uri in (stores["tracking_uri"], stores["storage"]):
        with sqlite3.connect(uri.removeprefix("sqlite:///")) as connection:  # the mode is the file's
            assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal", uri
    with storage.engine.connect() as connection:  # and each connection of the store syncs less often
        assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
    other = sqlalchemy.create_engine(f"sqlite:///{tmp_path / 'users-own.db'}")
    with other.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
