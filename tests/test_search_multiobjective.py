"""``--objectives metric,params|latency``: a Pareto search, its front marked on the leaderboard."""

from __future__ import annotations

import optuna
import pytest

from mmbench.tracking.leaderboard import leaderboard
from mmbench.search.study import run_search
from mmbench.tracking.tracker import Tracker


@pytest.mark.parametrize(("second", "metric"), [("params", "n_parameters"), ("latency", "latency_ms")])
def test_pareto_search_records_both_objectives_and_marks_the_front(tiny_task, search_settings, stores, second, metric):
    outcome = run_search(search_settings(tiny_task(), n_trials=4, max_epochs=1, objectives=f"metric,{second}",
                                         fusions=["early", "late"]))
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    assert outcome.pareto_trials and set(outcome.pareto_trials) == {t.number for t in study.best_trials}
    tracker = Tracker(stores["tracking_uri"])
    for trial in study.trials:
        if trial.state.name == "COMPLETE":
            run = tracker.client.get_run(trial.user_attrs["mlflow_run_id"])
            assert run.data.metrics[metric] == pytest.approx(trial.values[1])
            assert run.data.tags["mmbench.objectives"] == f"metric,{second}"
    rows = leaderboard(tracker, task="tiny")
    assert all(r.pareto is not None for r in rows) and any(r.pareto for r in rows)
    assert rows[0].pareto  # the best validation score is always on the front
