"""The leaderboard is a query over crafted MLflow runs: ranking, seeds, Pareto marks, formats, filters."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from typer.testing import CliRunner

from mmbench.cli.app import app
from mmbench.tracking.leaderboard import average_ranks, leaderboard, render
from mmbench.tracking.tracker import TAG, Tracker


def _run(tracker: Tracker, task: str, combination: str, *, val: float, test: float, seed: int = 0,
         params: dict | None = None, objectives: str = "metric", extra: dict | None = None, state: str = "COMPLETE") -> str:
    experiment = tracker.experiment_id(task)
    fusion = combination.split(" | ")[0]
    tags = {f"{TAG}task": task, f"{TAG}combination": combination, f"{TAG}fusion": fusion, f"{TAG}metric": "accuracy",
            f"{TAG}seed": str(seed), f"{TAG}objectives": objectives}
    run_id = tracker.start_trial(experiment, "parent", run_name=combination, tags=tags,
                                 params={"fusion": fusion, "seed": seed, **(params or {})})
    tracker.log_metrics(run_id, {"val_score": val, "test_score": test, "n_parameters": 1000, "duration_s": 2.0, **(extra or {})})
    tracker.finish(run_id, state)
    return run_id


@pytest.fixture
def tracker(stores):
    return Tracker(stores["tracking_uri"])


def test_ranks_by_validation_not_test(tracker):
    # A wins on validation but loses on test; B the reverse: the leaderboard must follow validation.
    _run(tracker, "t", "early | x=a", val=0.90, test=0.50)
    _run(tracker, "t", "late | x=a", val=0.80, test=0.99)
    _run(tracker, "t", "tfn | x=a", val=0.99, test=0.10, state="PRUNED")  # not a finished model: ignored
    rows = leaderboard(tracker)
    assert [(r.rank, r.combination) for r in rows] == [(1, "early | x=a"), (2, "late | x=a")]
    assert rows[0].test_score == pytest.approx(0.50)


def test_best_configuration_of_a_combination_represents_it(tracker):
    _run(tracker, "t", "early | x=a", val=0.70, test=0.9, params={"train.lr": 0.1})
    best = _run(tracker, "t", "early | x=a", val=0.85, test=0.6, params={"train.lr": 0.01})
    (row,) = leaderboard(tracker)
    assert row.run_id == best and row.val_score == pytest.approx(0.85) and row.n_trials == 2 and row.n_seeds == 1


def test_mean_and_std_over_seeds_of_one_configuration(tracker):
    for seed, (val, test) in enumerate([(0.7, 0.6), (0.8, 0.7), (0.9, 0.8)]):
        _run(tracker, "t", "early | x=a", val=val, test=test, seed=seed, params={"train.lr": 0.01})
    _run(tracker, "t", "early | x=a", val=0.75, test=0.99, seed=7, params={"train.lr": 0.3})  # worse config
    (row,) = leaderboard(tracker)
    assert row.n_seeds == 3 and row.n_trials == 4
    assert row.val_score == pytest.approx(0.8) and row.val_std == pytest.approx(0.1)
    assert row.test_score == pytest.approx(0.7) and row.test_std == pytest.approx(0.1)
    assert "0.8000 ± 0.1000" in render([row], "markdown")


def test_pareto_front_is_marked_for_multi_objective_runs(tracker):
    objectives = "metric,params"
    _run(tracker, "t", "a | x=a", val=0.9, test=0.9, objectives=objectives, extra={"n_parameters": 5000})
    _run(tracker, "t", "b | x=a", val=0.8, test=0.8, objectives=objectives, extra={"n_parameters": 100})
    _run(tracker, "t", "c | x=a", val=0.7, test=0.7, objectives=objectives, extra={"n_parameters": 4000})  # dominated by b
    marks = {r.combination: r.pareto for r in leaderboard(tracker)}
    assert marks == {"a | x=a": True, "b | x=a": True, "c | x=a": False}


def _two_tasks(tracker):
    _run(tracker, "t1", "early | x=a", val=0.9, test=0.9)
    _run(tracker, "t1", "late | x=a", val=0.8, test=0.8)
    _run(tracker, "t2", "early | x=a", val=0.6, test=0.6)
    _run(tracker, "t2", "late | x=a", val=0.7, test=0.7)
    _run(tracker, "t2", "tfn | x=a", val=0.5, test=0.5)


def test_average_rank_across_tasks(tracker):
    _two_tasks(tracker)
    summary = {s["combination"]: (s["average_rank"], s["n_tasks"]) for s in average_ranks(leaderboard(tracker))}
    assert summary == {"early | x=a": (1.5, 2), "late | x=a": (1.5, 2), "tfn | x=a": (3.0, 1)}


def test_every_format_parses(tracker, stores):
    _two_tasks(tracker)
    runner = CliRunner()
    uri = ["--tracking-uri", stores["tracking_uri"]]

    out = runner.invoke(app, ["leaderboard", "--format", "json", *uri])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert [(r["task"], r["rank"]) for r in data["rows"]] == [("t1", 1), ("t1", 2), ("t2", 1), ("t2", 2), ("t2", 3)]
    assert {e["combination"] for e in data["average_ranks"]} == {"early | x=a", "late | x=a", "tfn | x=a"}

    out = runner.invoke(app, ["leaderboard", "--format", "csv", *uri])
    rows = list(csv.DictReader(io.StringIO(out.stdout)))
    assert len(rows) == 5 and rows[0]["combination"] == "early | x=a" and float(rows[0]["val_score"]) == pytest.approx(0.9)

    out = runner.invoke(app, ["leaderboard", "--format", "markdown", *uri])
    tables = [t for t in out.stdout.strip().split("\n\n")]
    assert len(tables) == 2  # per-row table, then the average-rank table
    for table in tables:
        lines = table.splitlines()
        widths = {len(re.split(r"(?<!\\)\|", line)) for line in lines}
        assert len(widths) == 1, table  # every line has the same number of cells
        assert re.fullmatch(r"\|(---\|)+", lines[1])
    assert len(tables[0].splitlines()) == 2 + 5

    out = runner.invoke(app, ["leaderboard", *uri])
    assert out.exit_code == 0 and "average rank across tasks" in out.stdout


def test_filters_task_fusion_top(tracker, stores):
    _two_tasks(tracker)
    runner = CliRunner()
    uri = ["--tracking-uri", stores["tracking_uri"], "--format", "json"]
    rows = json.loads(runner.invoke(app, ["leaderboard", "--task", "t2", *uri]).stdout)["rows"]
    assert [r["combination"] for r in rows] == ["late | x=a", "early | x=a", "tfn | x=a"]
    rows = json.loads(runner.invoke(app, ["leaderboard", "--fusion", "early", *uri]).stdout)["rows"]
    assert {(r["task"], r["combination"], r["rank"]) for r in rows} == {("t1", "early | x=a", 1), ("t2", "early | x=a", 2)}
    rows = json.loads(runner.invoke(app, ["leaderboard", "--top", "1", *uri]).stdout)["rows"]
    assert [(r["task"], r["combination"]) for r in rows] == [("t1", "early | x=a"), ("t2", "late | x=a")]


def test_unknown_task_filter_is_a_clear_error(tracker, stores):
    _two_tasks(tracker)
    with pytest.raises(Exception, match="no runs of task 'nope'"):
        leaderboard(tracker, task="nope")
