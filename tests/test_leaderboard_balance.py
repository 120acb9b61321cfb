"""The class balance a search records and the leaderboard's majority-class flag, on crafted runs and tiny prepared data."""

from __future__ import annotations

import json
import statistics

import datasets
import pytest
from typer.testing import CliRunner

from mmbench.cli.app import app
from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.provider import RawData
from mmbench.tracking.balance import BALANCE_TAG, MAJORITY_PREFIX, _fitting_json, majority_metrics, record_balance, study_balances
from mmbench.tracking.leaderboard import leaderboard
from mmbench.tracking.tracker import TAG, Tracker


@pytest.fixture
def tracker(stores):
    return Tracker(stores["tracking_uri"])


def _study(tracker: Tracker, task: str, *, majority: dict[str, float] | None = None, splits: dict | None = None) -> str:
    experiment = tracker.experiment_id(task)
    run_id = tracker.study_run(experiment, f"study-{task}", tags={f"{TAG}task": task}, params={})
    if majority is not None:
        record = {"task_type": "classification", "splits": splits or {"train": {"rows": 8, "classes": {"pos": 5, "neg": 3}}}}
        tracker.set_tags(run_id, {BALANCE_TAG: json.dumps(record)})
        tracker.log_metrics(run_id, {MAJORITY_PREFIX + k: v for k, v in majority.items()})
    return run_id


def _run(tracker: Tracker, task: str, parent: str, combination: str, val: float, *, metric: str = "accuracy",
         classical: str | None = None) -> str:
    experiment = tracker.experiment_id(task)
    tags = {f"{TAG}task": task, f"{TAG}combination": combination, f"{TAG}fusion": combination.split(" | ")[0], f"{TAG}metric": metric}
    if classical:
        tags[f"{TAG}classical"] = classical
    run_id = tracker.start_trial(experiment, parent, run_name=combination, tags=tags, params={"name": combination})
    tracker.log_metrics(run_id, {"val_score": val, "test_score": val})
    tracker.finish(run_id, "COMPLETE")
    return run_id


def test_rows_that_never_leave_the_recorded_majority_score_are_flagged(tracker, stores):
    parent = _study(tracker, "t", majority={"accuracy": 0.62, "macro_f1": 0.38})
    _run(tracker, "t", parent, "a | x=a", 0.62)   # the prior, exactly
    _run(tracker, "t", parent, "b | x=a", 0.625)  # within the tolerance (0.01)
    _run(tracker, "t", parent, "c | x=a", 0.80)
    _run(tracker, "t", parent, "d | x=a", 0.55)   # worse than always answering the majority class
    balances: dict = {}
    flags = {r.combination: r.majority for r in leaderboard(tracker, balances=balances)}
    assert flags == {"a | x=a": True, "b | x=a": True, "c | x=a": False, "d | x=a": True}
    assert balances["t"]["majority"] == {"metric": "accuracy", "val_score": 0.62, "tolerance": 0.01, "from": "recorded with the study"}

    runner = CliRunner()
    out = runner.invoke(app, ["leaderboard", "--format", "json", "--tracking-uri", stores["tracking_uri"]])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["class_balance"]["t"]["splits"]["train"]["classes"] == {"pos": 5, "neg": 3}
    assert {r["combination"]: r["majority"] for r in data["rows"]} == flags
    table = runner.invoke(app, ["leaderboard", "--tracking-uri", stores["tracking_uri"]]).stdout
    assert "≈majority" in table and "train classes: pos 5 (62%), neg 3 (38%)" in table
    assert "majority-class predictor: val accuracy 0.6200" in table


def test_the_classical_majority_baseline_is_the_reference_when_present(tracker):
    parent = _study(tracker, "t", majority={"accuracy": 0.62})
    _run(tracker, "t", parent, "baseline | majority", 0.70, classical="majority")
    _run(tracker, "t", parent, "a | x=a", 0.705)
    _run(tracker, "t", parent, "b | x=a", 0.75)
    balances: dict = {}
    flags = {r.combination: r.majority for r in leaderboard(tracker, balances=balances)}
    assert flags == {"baseline | majority": True, "a | x=a": True, "b | x=a": False}
    assert balances["t"]["majority"]["from"] == "baseline | majority" and balances["t"]["majority"]["val_score"] == 0.70


def test_error_metrics_are_flagged_in_their_own_direction(tracker):
    parent = _study(tracker, "t", majority={"rmse": 10.0})
    _run(tracker, "t", parent, "a | x=a", 9.95, metric="rmse")  # better by 0.05, under 1% of 10
    _run(tracker, "t", parent, "b | x=a", 8.0, metric="rmse")
    _run(tracker, "t", parent, "c | x=a", 12.0, metric="rmse")  # worse than predicting the mean
    assert {r.combination: r.majority for r in leaderboard(tracker)} == {"a | x=a": True, "b | x=a": False, "c | x=a": True}


def test_an_old_store_without_the_record_still_prints_a_leaderboard(tracker, stores):
    parent = _study(tracker, "t")  # recorded before class balances were
    _run(tracker, "t", parent, "a | x=a", 0.9)
    balances: dict = {}
    (row,) = leaderboard(tracker, balances=balances)
    assert row.majority is None and balances == {}
    runner = CliRunner()
    out = runner.invoke(app, ["leaderboard", "--format", "json", "--tracking-uri", stores["tracking_uri"]])
    assert out.exit_code == 0 and json.loads(out.stdout)["class_balance"] == {}
    table = runner.invoke(app, ["leaderboard", "--tracking-uri", stores["tracking_uri"]])
    assert table.exit_code == 0 and "a | x=a" in table.stdout and "class balance" not in table.stdout


def _prepared(labels: list, **spec) -> object:
    n = len(labels)
    table = {"x": [float((i * 7) % 11) for i in range(n)], "y": labels}
    raw = RawData(splits={"all": datasets.Dataset.from_dict(table)}, modalities={"x": "numeric"})
    return prepare(raw, DataSpec(label="y", **spec))


def test_the_majority_predictor_is_scored_with_the_train_prior(tracker):
    data = _prepared(["pos" if i % 10 < 7 else "neg" for i in range(200)])
    metrics = majority_metrics(data, metric="accuracy")
    validation = data.splits["validation"]["y"]
    assert metrics["accuracy"] == pytest.approx(validation.count("pos") / len(validation))  # train's largest class
    assert metrics["auroc"] == pytest.approx(0.5) and metrics["balanced_accuracy"] == pytest.approx(0.5)

    run_id = _study(tracker, "t")
    record_balance(tracker, run_id, data, metric="accuracy")
    (balance,) = study_balances(tracker, [tracker.experiment_id("t")]).values()
    assert balance.task_type == "classification" and balance.majority["accuracy"] == pytest.approx(metrics["accuracy"])
    assert balance.splits["validation"] == {"rows": len(validation), "classes": {"pos": validation.count("pos"), "neg": validation.count("neg")}}


def test_under_k_fold_the_majority_score_is_the_mean_over_folds():
    from mmbench.data.splits import SplitSpec

    data = _prepared(["pos" if i % 10 < 6 else "neg" for i in range(150)], split=SplitSpec(folds=3))
    pool = list(data.splits["train"]["y"]) + list(data.splits["validation"]["y"])
    shares = []
    for fold in data.folds:
        held = set(int(i) for i in fold)
        train = [y for i, y in enumerate(pool) if i not in held]
        largest = max(set(train), key=train.count)
        shares.append(sum(pool[i] == largest for i in held) / len(held))
    assert majority_metrics(data, metric="accuracy")["accuracy"] == pytest.approx(statistics.fmean(shares))


def test_regression_and_multilabel_majority_predictors():
    prices = _prepared([100.0 + 3.5 * ((i * 13) % 29) for i in range(120)], task_type="regression")
    train, validation = prices.splits["train"]["y"], prices.splits["validation"]["y"]
    mean = statistics.fmean(train)
    expected = (sum((v - mean) ** 2 for v in validation) / len(validation)) ** 0.5
    assert majority_metrics(prices, metric="rmse")["rmse"] == pytest.approx(expected, rel=1e-5)  # the train mean, always

    # "x" on every row, "y" on one in ten: the prior predictor answers {x}, or {x, y} at a low threshold
    genres = _prepared([["x", "y"] if i % 10 == 0 else ["x"] for i in range(200)])
    val = genres.splits["validation"]["y"]
    n, n_y = len(val), sum("y" in row for row in val)
    only_x, both = 2 * n / (2 * n + n_y), 2 * (n + n_y) / (2 * (n + n_y) + (n - n_y))
    metrics = majority_metrics(genres, metric="micro_f1")
    assert metrics["micro_f1"] == pytest.approx(max(only_x, both)) and 0.05 <= metrics["threshold"] <= 0.95


def test_a_record_of_many_classes_fits_the_tag_and_says_how_many_it_left_out():
    from mmbench.data.inspection import balance_lines

    splits = {"train": {"rows": 3000, "classes": {f"a-rather-long-class-name-{i}": 3 for i in range(1000)}}}
    text = _fitting_json("classification", splits)
    kept = json.loads(text)["splits"]["train"]
    assert len(text) <= 5000 and 0 < len(kept["classes"]) < 1000 and len(kept["classes"]) + kept["more"] == 1000
    (line,) = balance_lines({"train": kept}, n_shown=2)
    assert line.endswith(", ... 998 more")


def test_predict_decides_with_the_threshold_of_the_saved_model():
    from types import SimpleNamespace

    from mmbench.runs.predict import DEFAULT_THRESHOLD, decision_threshold

    def run(**metrics: float) -> SimpleNamespace:
        return SimpleNamespace(data=SimpleNamespace(metrics=metrics))

    assert decision_threshold(run(val_threshold=0.35)) == (0.35, "val_threshold")
    # k-fold: the saved model is the last fold's, so its own threshold, not the folds' mean
    assert decision_threshold(run(val_threshold=0.4, n_folds=3, val_threshold_fold2=0.25)) == (0.25, "val_threshold_fold2")
    assert decision_threshold(run()) == (DEFAULT_THRESHOLD, "")  # recorded before thresholds were tuned
