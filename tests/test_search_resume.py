"""Resume: a killed worker's trial is closed and retried, finished trials never rerun, MLflow
runs stay one-to-one with trials, and a study name cannot be reused for another task/space."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import optuna
import pytest

from mmbench.errors import ConfigError
from mmbench.search.study import run_search
from mmbench.tracking.tracker import Tracker


def _wait_for_running_trial(storage: str, process: subprocess.Popen, limit: float = 120.0) -> None:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            study = optuna.load_study(study_name="tiny", storage=storage)
            running = [t for t in study.trials if t.state.name == "RUNNING" and "mlflow_run_id" in t.user_attrs]
            if running and any(running[0].intermediate_values.values()) or (running and running[0].intermediate_values):
                return
        except KeyError:
            pass
        time.sleep(0.5)
    raise AssertionError("the search never got a trial running")


def test_sigkilled_worker_trial_is_closed_and_retried(tiny_task, stores):
    task = tiny_task()
    slow = [sys.executable, "-m", "mmbench.cli", "search", str(task), "--n-trials", "3", "--quiet", "--no-plots",
            "--device", "cpu", "--max-epochs", "100000", "--set", "train.patience=100000", "--pruner", "none",
            "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"]]
    process = subprocess.Popen(slow, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_running_trial(stores["storage"], process)
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    killed = optuna.load_study(study_name="tiny", storage=stores["storage"]).trials[0]
    assert killed.state.name == "RUNNING"

    from mmbench.search import SearchSettings

    settings = SearchSettings.of(task=str(task), n_trials=2, max_epochs=1, device="cpu", plots=False, pruner="none",
                              fixed={"train.patience": 100000}, **stores)
    outcome = run_search(settings)
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    states = [(t.number, t.state.name, bool(t.user_attrs.get("mmbench.interrupted"))) for t in study.trials]
    assert states == [(0, "FAIL", True), (1, "COMPLETE", False), (2, "COMPLETE", False)]
    assert study.trials[1].params == killed.params  # the interrupted configuration ran again
    assert study.trials[1].user_attrs["mmbench.retry_of"] == 0
    assert outcome.n_complete == 2

    tracker = Tracker(stores["tracking_uri"])
    runs = tracker.trial_runs(list(tracker.task_experiments("tiny")))
    by_trial = {int(r.data.tags["mmbench.trial"]): r for r in runs}
    assert sorted(by_trial) == [0, 1, 2] and len(runs) == 3  # one run per trial, none duplicated
    dead = by_trial[0]
    assert dead.info.run_id == killed.user_attrs["mlflow_run_id"]
    assert dead.info.status == "KILLED" and dead.data.tags["mmbench.state"] == "KILLED"
    assert "interrupted" in dead.data.tags["mmbench.reason"]

    # a further resume with the same budget runs nothing and retries nothing again
    assert run_search(settings).n_trials == 3


def test_resume_never_reruns_finished_trials(tiny_task, search_settings, stores):
    task = tiny_task()
    run_search(search_settings(task, n_trials=2, max_epochs=1))
    first = {t.number: t.datetime_complete for t in optuna.load_study(study_name="tiny", storage=stores["storage"]).trials}
    run_search(search_settings(task, n_trials=3, max_epochs=1))
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert len(study.trials) == 3
    assert {t.number: t.datetime_complete for t in study.trials[:2]} == first
    tracker = Tracker(stores["tracking_uri"])
    experiments = list(tracker.task_experiments("tiny"))
    assert sorted(int(r.data.tags["mmbench.trial"]) for r in tracker.trial_runs(experiments)) == [0, 1, 2]
    assert len(tracker.client.search_runs(experiments, "tags.`mmbench.role` = 'study'")) == 1


@pytest.mark.parametrize(
    ("second", "message"),
    [
        ({"task_name": "other"}, "study 'shared' belongs to task 'tiny', not 'other'"),
        ({"fusions": ["early"]}, "study 'shared' was created with a different search space"),
        ({"objectives": "metric,params"}, "study 'shared' optimises --objectives metric, not metric,params"),
    ],
)
def test_study_name_collision_is_a_clear_error(tiny_task, search_settings, second, message):
    run_search(search_settings(tiny_task(), study="shared", n_trials=1, max_epochs=1))
    task = tiny_task(second.pop("task_name")) if "task_name" in second else tiny_task()
    with pytest.raises(ConfigError, match=message):
        run_search(search_settings(task, study="shared", n_trials=2, max_epochs=1, **second))


def test_a_worker_starting_while_another_claims_the_study_never_sees_half_a_claim(tiny_task, search_settings, registry, stores):
    import optuna

    from mmbench.search.study import _claim_or_check, plan_search

    plan = plan_search(search_settings(tiny_task()), registry)
    study = optuna.create_study(study_name=plan.study_name, storage=stores["storage"])
    other = optuna.load_study(study_name=plan.study_name, storage=stores["storage"])
    claim = study.set_user_attr

    def claim_then_let_the_other_worker_check(key, value):
        claim(key, value)
        _claim_or_check(other, plan)  # a second worker starting between two writes of the claim

    study.set_user_attr = claim_then_let_the_other_worker_check
    _claim_or_check(study, plan)
    assert study.user_attrs["mmbench.task"] == plan.task.name
