"""A regression task (a numeric price label) through search, leaderboard, predict and reproduce."""

from __future__ import annotations

import csv
import json

import optuna

from tests.cli import run_cli


def _price_task(tmp_path):
    rows = [{"area": 40 + (i * 37) % 160, "rooms": 1 + i % 5, "price": round(1000 + 25.5 * (40 + (i * 37) % 160) + 300 * (i % 5), 2)}
            for i in range(160)]
    with open(tmp_path / "houses.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["area", "rooms", "price"])
        writer.writeheader()
        writer.writerows(rows)
    (tmp_path / "houses.yaml").write_text(
        "name: houses\ndata:\n  provider: files\n  options: {path: houses.csv}\nlabel: price\n"
        "modalities: {area: numeric, rooms: numeric}\nsplit: {validation: 0.2, test: 0.2, seed: 0}\n"
        "search:\n  max_epochs: 2\n  patience: 2\n")
    with open(tmp_path / "new.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["area", "rooms"])
        writer.writeheader()
        writer.writerows([{"area": 100, "rooms": 2}, {"area": 60, "rooms": 4}])
    return tmp_path / "houses.yaml"


def test_a_price_label_is_searched_as_regression_ranked_by_lowest_rmse(tmp_path, stores):
    task = _price_task(tmp_path)
    store = ["--tracking-uri", stores["tracking_uri"]]
    result = run_cli("search", str(task), "--n-trials", "2", "--device", "cpu", "--storage", stores["storage"], *store)
    assert result.returncode == 0, result.stderr
    # a task file on real data gets --preset medium, whose baselines and ensemble are for classes: said, not silent
    said = result.stdout + result.stderr
    assert "classical baselines skipped: they predict class probabilities, and this task is regression" in said
    assert "ensemble skipped: it combines class probabilities, and this task is regression" in said
    study = optuna.load_study(study_name="houses", storage=stores["storage"])
    assert study.direction == optuna.study.StudyDirection.MINIMIZE  # rmse: lower is better
    assert any("train.loss" in t.params for t in study.trials)  # the loss is searched on regression

    board = run_cli("leaderboard", "--format", "json", *store)
    assert board.returncode == 0, board.stderr
    rows = json.loads(board.stdout)["rows"]
    assert {r["metric"] for r in rows} == {"rmse"}
    scores = [r["val_score"] for r in rows]
    assert scores == sorted(scores)  # ascending: the smallest error ranks first
    assert abs(scores[0] - min(t.value for t in study.trials if t.value is not None)) < 1e-9

    best = study.best_trial.user_attrs["mlflow_run_id"]
    predicted = run_cli("predict", best, str(tmp_path / "new.csv"), "--output", str(tmp_path / "out.csv"), *store)
    assert predicted.returncode == 0, predicted.stderr
    with open(tmp_path / "out.csv") as handle:
        values = [float(r["prediction"]) for r in csv.DictReader(handle)]
    assert len(values) == 2 and all(1000 < v < 10000 for v in values)  # in the price's units, not standardised

    again = run_cli("reproduce", best, *store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "rmse" in again.stdout and "identical" in again.stdout
