"""Holistic evaluation on a synthetic task of known structure (signal only in modality x1).

One small search (one trial, early fusion) plus its post-search evaluations is shared by the
module's tests, so the suite stays quick on a CPU.
"""

from __future__ import annotations

import csv
import json
import statistics

import pytest
from typer.testing import CliRunner

from mmbench.errors import ConfigError, TrackingError

TASK = """name: unique-signal
data:
  provider: synthetic
  options: {n_samples: 400, n_modalities: 2, dim: 4, mode: unique, informative: 0, noise: 0.2}
label: label
metric: accuracy
split: {validation: 0.25, test: 0.25, seed: 0}
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished search with robustness, baselines and 2 seeds; returns what tests need."""
    from mmbench.runs.evaluation import post_search
    from mmbench.registry import load_registry
    from mmbench.search import SearchSettings, run_search

    root = tmp_path_factory.mktemp("evaluation")
    task = root / "unique.yaml"
    task.write_text(TASK)
    settings = SearchSettings.of(
        task=str(task), n_trials=1, device="cpu", plots=False, pruner="none",
        storage=f"sqlite:///{root / 'optuna.db'}", tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        fusions=["early"], encoders={"embedding": ["embedding.mlp"]}, max_epochs=8,
        fixed={"train.lr": 0.01, "train.batch_size": 32, "train.patience": 8},
    )
    registry = load_registry()
    outcome = run_search(settings, registry=registry)
    done = post_search(outcome, settings, registry, robustness=True, baselines=True, n_seeds=2)
    return {"root": root, "settings": settings, "outcome": outcome, "registry": registry, "done": done}


def _tracker(searched):
    from mmbench.tracking.tracker import Tracker

    return Tracker(searched["settings"].store.tracking_uri)


def _metrics(searched):
    return _tracker(searched).client.get_run(searched["outcome"].best_run_id).data.metrics


def test_the_model_learned_the_informative_modality(searched):
    assert _metrics(searched)["test_accuracy"] > 0.8


def test_shapley_gives_the_informative_modality_nearly_all_the_credit(searched):
    metrics = _metrics(searched)
    assert metrics["shapley_share.x1"] > 85
    assert abs(metrics["shapley_share.x2"]) < 15
    assert metrics["shapley.x1"] + metrics["shapley.x2"] == pytest.approx(metrics["robust_clean"] - metrics["robust_floor"], abs=1e-6)


def test_removing_the_informative_modality_drops_to_chance_but_not_the_other(searched):
    metrics = _metrics(searched)
    clean = metrics["robust_clean"]
    assert metrics["robust_missing.x1"] < 0.65  # two balanced classes: chance is 0.5
    assert metrics["robust_missing.x2"] > clean - 0.05
    assert metrics["robust_effective.x2"] > 0.9 > metrics["robust_effective.x1"]


def test_robustness_and_contribution_artifacts_are_logged(searched):
    client = _tracker(searched).client
    names = {f.path for f in client.list_artifacts(searched["outcome"].best_run_id, "evaluation")}
    assert names == {f"evaluation/{n}.{e}" for n in ("robustness", "contributions") for e in ("json", "png")}


def test_every_trial_records_its_efficiency(searched):
    metrics = _metrics(searched)
    for name in ("n_parameters", "n_parameters_total", "train_epoch_s", "latency_ms_b1", "latency_ms_batched"):
        assert metrics[name] > 0, name


def test_measure_latency_is_milliseconds_per_example(searched):
    from mmbench.train.efficiency import measure_latency
    from mmbench.runs.predict import load_model
    from mmbench.runs.reproduce import load_source

    source = load_source(_tracker(searched), searched["outcome"].best_run_id, searched["registry"])
    model = load_model(_tracker(searched), source, searched["registry"], retrain=False)
    assert 0 < measure_latency(model, source.tensors["validation"]) < 1000


def test_reproduce_gives_identical_metrics_on_cpu(searched):
    from mmbench.runs.reproduce import reproduce

    outcome = reproduce(_tracker(searched), searched["outcome"].best_run_id, searched["registry"])
    assert outcome.fingerprint_matches
    assert {"val_score", "test_score", "val_accuracy", "test_loss", "best_epoch"} <= set(outcome.recorded)
    assert outcome.identical, outcome.differences


def _test_rows(searched):
    from mmbench.runs.reproduce import load_source

    source = load_source(_tracker(searched), searched["outcome"].best_run_id, searched["registry"])
    return source, list(source.data.splits["test"])


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_predict_round_trips_the_test_rows(searched, tmp_path, suffix):
    from mmbench.runs.predict import predict_file

    _, rows = _test_rows(searched)
    data = tmp_path / f"rows{suffix}"
    if suffix == ".jsonl":
        data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    else:
        with data.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows({k: json.dumps(v) if isinstance(v, list) else v for k, v in row.items()} for row in rows)
    output, n = predict_file(_tracker(searched), searched["outcome"].best_run_id, data, tmp_path / f"out{suffix}",
                             searched["registry"], retrain=False)
    assert n == len(rows)
    if suffix == ".jsonl":
        predictions = [json.loads(line) for line in output.read_text().splitlines()]
    else:
        predictions = list(csv.DictReader(output.open()))
    assert [int(p["row"]) for p in predictions] == list(range(len(rows)))
    accuracy = statistics.fmean(str(p["prediction"]) == str(r["label"]) for p, r in zip(predictions, rows))
    assert accuracy == pytest.approx(_metrics(searched)["test_accuracy"], abs=1e-6)
    assert float(predictions[0]["p_0"]) + float(predictions[0]["p_1"]) == pytest.approx(1.0, abs=1e-5)


def test_evaluate_a_labelled_file_matches_the_test_split(searched, tmp_path):
    from mmbench.runs.evaluation import evaluate_run

    _, rows = _test_rows(searched)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in rows))
    on_file = evaluate_run(_tracker(searched), searched["outcome"].best_run_id, searched["registry"], split=str(data))
    on_split = evaluate_run(_tracker(searched), searched["outcome"].best_run_id, searched["registry"], split="test")
    assert on_file.metrics["accuracy"] == pytest.approx(on_split.metrics["accuracy"])
    assert on_split.metrics["accuracy"] == pytest.approx(_metrics(searched)["test_accuracy"], abs=1e-6)


def test_seed_reruns_give_mean_and_std_on_the_leaderboard(searched):
    from mmbench.tracking.leaderboard import leaderboard

    tracker = _tracker(searched)
    assert len(searched["done"]["seed_runs"]) == 1
    (row,) = leaderboard(tracker, task="unique-signal")
    assert row.n_seeds == 2
    runs = [tracker.client.get_run(searched["outcome"].best_run_id), tracker.client.get_run(searched["done"]["seed_runs"][0])]
    values = [r.data.metrics["val_score"] for r in runs]
    assert {r.data.tags["mmbench.seed"] for r in runs} == {"0", "1000"}
    assert row.val_score == pytest.approx(statistics.fmean(values))
    assert row.val_std == pytest.approx(statistics.stdev(values))
    assert runs[1].data.metrics["latency_ms_batched"] > 0  # reruns record their cost too


def test_baselines_and_fusion_gain(searched):
    from mmbench.tracking.leaderboard import leaderboard

    baselines = {b.modality: b for b in searched["done"]["baselines"]}
    assert set(baselines) == {"x1", "x2"}
    assert baselines["x1"].val_score > 0.8 and baselines["x2"].val_score < 0.7
    (row,) = leaderboard(_tracker(searched), task="unique-signal")
    assert row.fusion_gain == pytest.approx(row.val_score - baselines["x1"].val_score)
    config = json.loads(json.dumps(_tracker(searched).client.get_run(baselines["x2"].run_id).data.params))
    assert config["fusion"] == "early" and "encoder.x1" not in config


def test_runs_without_weights_need_retraining(searched):
    from mmbench.runs.predict import load_model
    from mmbench.runs.reproduce import load_source

    seed_run = searched["done"]["seed_runs"][0]
    source = load_source(_tracker(searched), seed_run, searched["registry"])
    with pytest.raises(TrackingError, match="no model/weights.safetensors"):
        load_model(_tracker(searched), source, searched["registry"], retrain=False)


def test_report_has_every_section_and_is_logged(searched, tmp_path):
    from mmbench.runs.evaluation.report import SECTIONS, write_report

    path = write_report(_tracker(searched), "unique-signal", tmp_path / "report.html")
    page = path.read_text()
    for section in SECTIONS:
        assert f'<section id="{section}">' in page
    assert page.count("data:image/png;base64,") >= 3  # robustness, efficiency, contributions
    assert "No robustness" not in page and "No contribution" not in page
    assert "unimodal" in page and "<link" not in page and "<script" not in page  # self-contained
    client = _tracker(searched).client
    parent = client.get_run(searched["outcome"].parent_run_id)
    assert "report/report.html" in {f.path for f in client.list_artifacts(parent.info.run_id, "report")}


def test_cli_commands(searched, tmp_path):
    from mmbench.cli.app import app

    runner = CliRunner()
    uri = ["--tracking-uri", searched["settings"].store.tracking_uri]
    run_id = searched["outcome"].best_run_id
    result = runner.invoke(app, ["evaluate", run_id, "--split", "validation", "--contributions", "--format", "json", *uri])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["split"] == "validation" and payload["contributions"]["share"]["x1"] > 85
    result = runner.invoke(app, ["reproduce", run_id, *uri])
    assert result.exit_code == 0 and "identical" in result.stdout, result.output
    _, rows = _test_rows(searched)
    data = tmp_path / "rows.jsonl"
    data.write_text("".join(json.dumps({k: v for k, v in row.items() if k != "label"}) + "\n" for row in rows[:5]))
    result = runner.invoke(app, ["predict", run_id, str(data), "--output", str(tmp_path / "p.csv"), *uri])
    assert result.exit_code == 0, result.output
    assert len(list(csv.DictReader((tmp_path / "p.csv").open()))) == 5
    result = runner.invoke(app, ["report", "--task", "unique-signal", "--output", str(tmp_path / "r.html"), *uri])
    assert result.exit_code == 0 and (tmp_path / "r.html").exists(), result.output


def test_user_mistakes_are_one_line_errors(searched, tmp_path):
    from mmbench.cli.app import app

    uri = ["--tracking-uri", searched["settings"].store.tracking_uri]
    runner = CliRunner()
    result = runner.invoke(app, ["evaluate", "0123456789abcdef", *uri])
    assert isinstance(result.exception, TrackingError) and "no run '0123456789abcdef'" in str(result.exception)
    result = runner.invoke(app, ["predict", searched["outcome"].best_run_id, str(tmp_path / "rows.txt"), *uri])
    assert isinstance(result.exception, ConfigError) and "rows.txt" in str(result.exception)
    result = runner.invoke(app, ["search", str(tmp_path / "x.yaml"), "--seeds", "0"])
    assert isinstance(result.exception, ConfigError) and "--seeds" in str(result.exception)
