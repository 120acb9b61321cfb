"""A multi-label task (a delimiter-separated genres label) through the real CLI: search, leaderboard
(class balance, majority flag), predict with the tuned threshold, reproduce, report, ensemble refused."""

from __future__ import annotations

import csv
import json
import math

import optuna

from tests.cli import run_cli

GENRES = ("action", "comedy", "drama")



def _features(i: int) -> dict[str, float]:
    return {"a": math.sin(1.7 * i), "b": math.cos(2.3 * i), "c": math.sin(0.9 * i + 1.0)}


def _genres(row: dict[str, float]) -> str:
    """Each genre follows one feature's sign; a row with none is drama (drama is the common genre)."""
    names = [name for name, value in zip(GENRES, (row["a"], row["b"], row["c"])) if value > 0.3]
    return "|".join(names or ["drama"])


def _movies_task(tmp_path):
    rows = [{**_features(i), "genres": _genres(_features(i))} for i in range(200)]
    with open(tmp_path / "movies.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["a", "b", "c", "genres"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "movies.yaml").write_text(
        "name: movies\ndata:\n  provider: files\n  options: {path: movies.csv}\nlabel: genres\nlabel_delimiter: '|'\n"
        "modalities: {a: numeric, b: numeric, c: numeric}\nsplit: {validation: 0.25, test: 0.25, seed: 0}\n"
        "search:\n  max_epochs: 1\n  patience: 1\n")
    with open(tmp_path / "new.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["a", "b", "c"])
        writer.writeheader()
        writer.writerows([_features(1000 + i) for i in range(40)])
    return tmp_path / "movies.yaml"


def test_a_delimited_label_is_searched_predicted_and_reproduced_as_multilabel(tmp_path, stores):
    task = _movies_task(tmp_path)
    store = ["--tracking-uri", stores["tracking_uri"]]
    result = run_cli("search", str(task), "--n-trials", "2", "--max-epochs", "1", "--quiet", "--device", "cpu",
                  "--storage", stores["storage"], "--no-plots", *store)
    assert result.returncode == 0, result.stderr
    study = optuna.load_study(study_name="movies", storage=stores["storage"])
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE  # micro-F1: higher is better

    board = run_cli("leaderboard", "--format", "json", *store)
    assert board.returncode == 0, board.stderr
    data = json.loads(board.stdout)
    rows = data["rows"]
    assert {r["metric"] for r in rows} == {"micro_f1"}
    scores = [r["val_score"] for r in rows]
    assert scores == sorted(scores, reverse=True)  # descending: the highest F1 ranks first
    assert abs(scores[0] - max(t.value for t in study.trials if t.value is not None)) < 1e-9
    balance = data["class_balance"]["movies"]
    assert balance["task_type"] == "multilabel" and set(balance["splits"]) == {"train", "validation", "test"}
    assert sum(balance["splits"][s]["rows"] for s in balance["splits"]) == 200
    assert set(balance["splits"]["train"]["classes"]) == set(GENRES)
    majority = balance["majority"]
    assert majority["metric"] == "micro_f1" and 0 < majority["val_score"] < 1
    assert all(isinstance(r["majority"], bool) for r in rows)  # every row was compared with it
    table = run_cli("leaderboard", *store)
    assert table.returncode == 0 and "train classes: drama" in table.stdout and "majority-class predictor" in table.stdout

    best = study.best_trial.user_attrs["mlflow_run_id"]
    from mmbench.tracking.tracker import Tracker

    recorded = Tracker(stores["tracking_uri"]).get_run(best).data.metrics
    assert {"val_micro_f1", "val_macro_f1", "val_samples_f1", "val_map", "test_micro_f1"} <= set(recorded)
    threshold = recorded["val_threshold"]
    assert threshold != 0.5  # else this test could not tell the tuned threshold from one half

    predicted = run_cli("predict", best, str(tmp_path / "new.csv"), "--output", str(tmp_path / "out.csv"), *store)
    assert predicted.returncode == 0, predicted.stderr
    assert f"threshold {threshold:g}: tuned on validation" in predicted.stderr
    with open(tmp_path / "out.csv") as handle:
        out = list(csv.DictReader(handle))
    assert len(out) == 40
    moved = 0
    for record in out:
        probabilities = {g: float(record[f"p_{g}"]) for g in GENRES}
        assert float(record["threshold"]) == threshold
        assert set(filter(None, record["prediction"].split("|"))) == {g for g, p in probabilities.items() if p >= threshold}
        moved += {g for g, p in probabilities.items() if p >= threshold} != {g for g, p in probabilities.items() if p >= 0.5}
    assert moved > 0  # at one half some rows would get other label sets

    again = run_cli("reproduce", best, *store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "micro_f1" in again.stdout and "threshold" in again.stdout and "identical" in again.stdout

    report = run_cli("report", "--task", "movies", "--output", str(tmp_path / "report.html"), *store)
    assert report.returncode == 0, report.stderr
    assert "micro_f1" in (tmp_path / "report.html").read_text(encoding="utf-8")

    refused = run_cli("ensemble", "--task", "movies", *store)
    assert refused.returncode == 2 and "a multilabel task cannot be ensembled" in refused.stderr
