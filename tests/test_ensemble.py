"""Ensembles and classical baselines: one small search (2 trials + classical rows) shared by the module."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from mmbench.train.classical import CLASSICAL_MODELS, FOREST_CHUNK, FOREST_TREES

TASK = """name: ens-tiny
data:
  provider: synthetic
  options: {n_samples: 240, n_modalities: 2, dim: 4, mode: mixed, noise: 0.2}
label: label
metric: accuracy
split: {validation: 0.25, test: 0.25, seed: 0}
search:
  max_epochs: 2
  patience: 2
"""


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    from mmbench.registry import load_registry
    from mmbench.search import SearchSettings, run_search

    root = tmp_path_factory.mktemp("ensemble")
    task = root / "ens.yaml"
    task.write_text(TASK)
    settings = SearchSettings.of(
        task=str(task), n_trials=2, device="cpu", plots=False, pruner="none", classical=True, ensemble=True,
        storage=f"sqlite:///{root / 'optuna.db'}", tracking_uri=f"sqlite:///{root / 'mlflow.db'}",
        fusions=["early"], encoders={"embedding": ["embedding.mlp"]},
    )
    registry = load_registry()
    outcome = run_search(settings, registry=registry)
    return {"root": root, "settings": settings, "outcome": outcome, "registry": registry}


def _tracker(searched):
    from mmbench.tracking.tracker import Tracker

    return Tracker(searched["settings"].store.tracking_uri)


def _runs(searched, role):
    tracker = _tracker(searched)
    return tracker.trial_runs([searched["outcome"].experiment_id], role=role)


# -- selection on arrays ------------------------------------------------------------------------


def _candidates(seed=0, n_models=5, n_rows=120, n_classes=3):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_rows)
    probas = []
    for quality in np.linspace(0.2, 1.0, n_models):
        logits = rng.normal(size=(n_rows, n_classes)) + quality * np.eye(n_classes)[labels] * 2
        probas.append(np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True))
    return probas, labels


def test_selection_is_deterministic_for_a_seed_and_never_below_its_best_member():
    from mmbench.search.ensemble import metric_score, select_ensemble

    probas, labels = _candidates()
    score = metric_score("accuracy", 3)
    first = select_ensemble(probas, labels, score=score, n_rounds=10, seed=3)
    again = select_ensemble(probas, labels, score=score, n_rounds=10, seed=3)
    assert first == again
    assert sum(first.weights) == pytest.approx(1.0)
    assert first.val_score >= max(score(labels, p) for p in probas)


def test_sorted_initialisation_starts_from_the_best_candidates():
    from mmbench.search.ensemble import metric_score, select_ensemble

    probas, labels = _candidates()
    score = metric_score("accuracy", 3)
    best_two = sorted(range(len(probas)), key=lambda i: -score(labels, probas[i]))[:2]
    chosen = select_ensemble(probas, labels, score=score, n_rounds=1, n_init=2, seed=0)
    assert set(best_two) <= set(chosen.members)


@pytest.mark.parametrize("seed", range(4))
def test_selection_scores_the_metric_as_trials_do(seed):
    """Selection's numpy scores against torchmetrics (float64 probabilities): ties, a class that is
    never predicted, a class missing from the rows (AUROC then falls back to torchmetrics)."""
    import torch
    from torchmetrics.functional.classification import binary_auroc, multiclass_auroc

    from mmbench.search.ensemble import metric_score
    from mmbench.train.metrics import probability_metrics

    rng = np.random.default_rng(seed)
    for n_classes in (2, 3, 5):
        labels = rng.integers(0, n_classes, 90)
        proba = rng.dirichlet(np.ones(n_classes), size=90)
        tied = np.round(proba, 1) + 1e-3
        for p in (proba, tied / tied.sum(axis=1, keepdims=True)):
            p = p.copy()
            p[:, -1] *= 0.01  # the last class is (almost) never predicted
            p /= p.sum(axis=1, keepdims=True)
            expected = probability_metrics(p, labels, n_classes)
            for metric in ("accuracy", "macro_f1"):
                assert metric_score(metric, n_classes)(labels, p) == pytest.approx(expected[metric], abs=1e-6)
            t, y = torch.tensor(p, dtype=torch.float64), torch.tensor(labels)
            auroc = binary_auroc(t[:, 1], y) if n_classes == 2 else multiclass_auroc(t, y, num_classes=n_classes, average="macro")
            assert metric_score("auroc", n_classes)(labels, p) == pytest.approx(auroc.item(), abs=1e-6)
        missing = np.where(labels == n_classes - 1, 0, labels)
        assert metric_score("auroc", n_classes)(missing, proba) == pytest.approx(
            probability_metrics(proba, missing, n_classes)["auroc"], abs=1e-9)


def test_selection_refuses_candidates_of_other_shapes():
    from mmbench.errors import ConfigError
    from mmbench.search.ensemble import metric_score, select_ensemble

    probas, labels = _candidates()
    with pytest.raises(ConfigError, match="differ in shape"):
        select_ensemble([probas[0], probas[1][:10]], labels, score=metric_score("accuracy", 3))


# -- the search's ensemble and classical rows -----------------------------------------------------


def test_every_finished_trial_stores_its_predictions_for_the_tasks_split(searched):
    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import load_task_data
    from mmbench.tracking.predictions import load_predictions

    data = load_task_data(resolve_task(str(searched["root"] / "ens.yaml"), searched["registry"]), searched["registry"])
    for role in ("trial", "classical"):
        for run in _runs(searched, role):
            stored = load_predictions(_tracker(searched), run.info.run_id)
            assert stored.fingerprint == data.fingerprint
            assert np.array_equal(stored.val_labels, data.labels("validation").numpy())
            assert np.array_equal(stored.test_labels, data.labels("test").numpy())
            assert stored.val_proba.shape == (len(stored.val_labels), 4)
            assert np.allclose(stored.test_proba.sum(axis=1), 1.0, atol=1e-4)
            accuracy = float(np.mean(stored.val_proba.argmax(axis=1) == stored.val_labels))
            assert accuracy == pytest.approx(run.data.metrics["val_score"], abs=1e-6)  # the task metric is accuracy


def test_classical_baselines_run_on_the_tasks_split_and_are_leaderboard_rows(searched):
    from mmbench.search.ensemble import WAYS, log_likelihood
    from mmbench.search.ensemble_stage import ensemble_record, gather_members
    from mmbench.tracking.leaderboard import leaderboard

    names = {run.data.tags["mmbench.classical"] for run in _runs(searched, "classical")}
    assert names == {"majority", "lightgbm", "catboost", "random_forest", "extra_trees"}  # no text or tabular column: no TF-IDF model
    rows = {row.combination: row for row in leaderboard(_tracker(searched))}
    assert {"baseline | majority", "baseline | lightgbm"} <= set(rows)
    assert rows["baseline | lightgbm"].val_score > rows["baseline | majority"].val_score
    ensemble_rows = [name for name in rows if name.startswith("ensemble | ")]
    assert len(ensemble_rows) == 1
    ensemble = _runs(searched, "ensemble")[0]
    candidates = gather_members(_tracker(searched), searched["outcome"].experiment_id)
    assert len(candidates) >= 3
    record = ensemble_record(_tracker(searched), ensemble)
    assert record["selected_by"] == "cross_checked" and set(record["held_out"]) == set(WAYS)
    assert ensemble.data.tags["mmbench.ensemble_way"] == record["way"]
    assert {f"held_out_{way}" for way in WAYS} <= set(ensemble.data.metrics)
    if record["way"] == "best_single":  # the leaderboard's best row alone
        assert len(record["members"]) == 1
        assert ensemble.data.metrics["val_score"] == pytest.approx(max(r.val_score for r in rows.values()
                                                                       if not r.combination.startswith("ensemble")))
    elif record["way"] == "log_likelihood":  # greedy on it: never worse there than any candidate alone
        assert -ensemble.data.metrics["val_log_loss"] >= max(log_likelihood(c.predictions.val_labels, c.predictions.val_proba)
                                                             for c in candidates) - 1e-6


def test_selection_by_log_likelihood_skips_a_member_that_only_flips_rows_by_luck():
    """Accuracy rewards a noisy model that happens to fix two validation rows; log likelihood sees its
    confident mistakes and keeps the calibrated model alone."""
    from mmbench.search.ensemble import log_likelihood, metric_score, select_ensemble

    labels = np.array([0, 1] * 50)
    truth = np.eye(2)[labels]
    calibrated = np.where(truth == 1, 0.7, 0.3)  # right on every row but two near misses: accuracy 0.98
    calibrated[:2] = np.where(truth[:2] == 1, 0.45, 0.55)
    lucky = truth.copy()  # certain, and right on rows 0-59 (the near misses among them)...
    lucky[60:] = 1 - truth[60:]  # ...and certain and wrong on the 40 others
    by_accuracy = select_ensemble([calibrated, lucky], labels, score=metric_score("accuracy", 2), n_rounds=5)
    by_likelihood = select_ensemble([calibrated, lucky], labels, score=log_likelihood, n_rounds=5)
    assert by_accuracy.weights[1] > 0
    assert by_likelihood.weights == (1.0, 0.0)


def _complementary(n_rows=200, seed=0):
    """Two models, each confidently right on its own half of the rows and unsure on the other: together
    they are right everywhere, alone on about three quarters."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n_rows)
    truth = np.eye(2)[labels]
    halves = rng.permutation(n_rows) < n_rows // 2
    first = np.where(halves[:, None], np.where(truth == 1, 0.9, 0.1), np.where(truth == 1, 0.45, 0.55))
    second = np.where(~halves[:, None], np.where(truth == 1, 0.9, 0.1), np.where(truth == 1, 0.45, 0.55))
    return [first, second], labels


def test_cross_checking_keeps_an_ensemble_of_complementary_models():
    from mmbench.search.ensemble import cross_checked_selection, metric_score

    probas, labels = _complementary()
    checked = cross_checked_selection(probas, labels, metric=metric_score("accuracy", 2), seed=0)
    assert checked.way in ("log_likelihood", "metric")
    assert checked.selection.members == [0, 1]
    assert checked.held_out[checked.way] > checked.held_out["best_single"] + 0.2
    assert checked == cross_checked_selection(probas, labels, metric=metric_score("accuracy", 2), seed=0)  # a seed fixes it


def test_cross_checking_keeps_the_best_single_model_against_noise():
    """Beside one good model, candidates that are noise help on no held-out fold: the good one is kept alone."""
    from mmbench.search.ensemble import cross_checked_selection, metric_score

    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, 150)
    good = np.full((150, 3), 0.2)
    good[np.arange(150), labels] = 0.6
    noise = [rng.dirichlet(np.ones(3) * 0.3, size=150) for _ in range(6)]
    checked = cross_checked_selection([*noise[:3], good, *noise[3:]], labels, metric=metric_score("accuracy", 3), seed=0)
    assert checked.way == "best_single"
    assert checked.selection.weights == (0, 0, 0, 1, 0, 0, 0)


def test_cross_checking_a_validation_split_too_small_to_fold_selects_greedily_once():
    from mmbench.search.ensemble import cross_checked_selection, metric_score, select_by

    probas, labels = _complementary(n_rows=8)
    checked = cross_checked_selection(probas, labels, metric=metric_score("accuracy", 2), seed=0)
    assert checked.held_out == {} and checked.way == "best_single"
    assert checked.selection == select_by("best_single", probas, labels, metric=metric_score("accuracy", 2))


def _rewrite_test_labels(tracker, run_id, labels):
    from mmbench.tracking.predictions import RunPredictions, load_predictions, log_predictions

    stored = load_predictions(tracker, run_id)
    log_predictions(tracker, run_id, RunPredictions(stored.fingerprint, stored.val_proba, stored.val_labels, stored.test_proba, labels))
    return stored.test_labels


def test_permuting_test_labels_leaves_members_and_weights_unchanged(searched):
    from mmbench.search.ensemble_stage import build_ensemble, gather_members

    tracker, experiment = _tracker(searched), searched["outcome"].experiment_id
    before = build_ensemble(tracker, experiment, task="ens-tiny", metric="accuracy", seed=1, n_rounds=8)
    members = gather_members(tracker, experiment)
    originals = {}
    permutation = np.random.default_rng(0).permutation(len(members[0].predictions.test_labels))
    try:
        for member in members:
            originals[member.run_id] = _rewrite_test_labels(tracker, member.run_id, member.predictions.test_labels[permutation])
        after = build_ensemble(tracker, experiment, task="ens-tiny", metric="accuracy", seed=1, n_rounds=8)
    finally:
        for run_id, labels in originals.items():
            _rewrite_test_labels(tracker, run_id, labels)
    assert after.weights == before.weights
    assert after.val_score == before.val_score
    again = build_ensemble(tracker, experiment, task="ens-tiny", metric="accuracy", seed=1, n_rounds=8)
    assert again.weights == before.weights and again.test_score == before.test_score  # deterministic for a seed


def test_predict_with_the_ensemble_reproduces_its_test_accuracy(searched, tmp_path):
    from mmbench.runs.predict import predict_file
    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import load_task_data

    ensemble = _runs(searched, "ensemble")[0]
    data = load_task_data(resolve_task(str(searched["root"] / "ens.yaml"), searched["registry"]), searched["registry"])
    rows = list(data.splits["test"])
    source = tmp_path / "rows.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output, n = predict_file(_tracker(searched), ensemble.info.run_id, source, tmp_path / "out.jsonl", searched["registry"])
    predictions = [json.loads(line) for line in output.read_text().splitlines()]
    assert n == len(rows)
    assert sum(float(predictions[0][f"p_{c}"]) for c in data.schema.classes) == pytest.approx(1.0, abs=1e-5)
    accuracy = float(np.mean([str(p["prediction"]) == str(r["label"]) for p, r in zip(predictions, rows)]))
    assert accuracy == pytest.approx(ensemble.data.metrics["test_accuracy"], abs=1e-6)


def test_ensemble_command_records_a_new_ensemble_and_names_a_task_without_runs(searched):
    from mmbench.cli.app import app
    from mmbench.errors import MmbenchError

    uri = ["--tracking-uri", searched["settings"].store.tracking_uri]
    result = CliRunner().invoke(app, ["ensemble", "--task", "ens-tiny", "--rounds", "5", *uri])
    assert result.exit_code == 0, result.output
    assert "ensemble | " in result.output and "candidates" in result.output
    assert "greedy by" in result.output or "the best single run" in result.output  # says how the bag was chosen
    result = CliRunner().invoke(app, ["ensemble", "--task", "no-such-task", *uri])
    assert isinstance(result.exception, MmbenchError) and "no-such-task" in str(result.exception)  # main() maps it to exit 2


def test_reproduce_reruns_the_selection_of_an_ensemble(searched):
    from mmbench.runs.reproduce import reproduce

    ensemble = _runs(searched, "ensemble")[0]
    outcome = reproduce(_tracker(searched), ensemble.info.run_id, searched["registry"])
    assert outcome.identical, outcome.differences
    assert any(name.startswith("weight:") for name in outcome.recorded)


def _review_task(tmp_path):
    """Reviews + a product table: the label is in the words and in the shop (a category); the price is noise to a tree."""
    import csv

    words = {"pos": ["great", "lovely", "superb"], "neg": ["awful", "broken", "poor"]}
    with open(tmp_path / "reviews.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["review", "price", "shop", "label"])
        writer.writeheader()
        for i in range(160):
            label = "pos" if i % 2 else "neg"
            writer.writerow({"review": f"item {i % 7} was {words[label][i % 3]} and arrived on day {i % 5}",
                             "price": (i * 37) % 100, "shop": f"s{i % 4}", "label": label})
    (tmp_path / "reviews.yaml").write_text(
        "name: reviews\ndata:\n  provider: files\n  options: {path: reviews.csv}\nlabel: label\n"
        "modalities: {review: text, price: numeric, shop: categorical}\nsplit: {validation: 0.25, test: 0.25, seed: 0}\n")
    return tmp_path / "reviews.yaml"


def test_classical_models_read_text_and_tabular_columns_on_the_tasks_split(tmp_path, registry):
    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.classical import fit_classical

    data = load_task_data(resolve_task(str(_review_task(tmp_path)), registry), registry)
    test_labels = data.labels("test").numpy()
    fitted = {name: fit_classical(name, data) for name in CLASSICAL_MODELS}
    assert fitted["tfidf_logreg"].columns.text == ["review"] and fitted["tfidf_logreg"].columns.categorical == ["shop"]
    for model in fitted.values():
        assert model.val_proba.shape == (data.split_sizes["validation"], 2)
        assert model.test_proba.shape == (len(test_labels), 2)
    for name in ("tfidf_logreg", "catboost", "random_forest", "extra_trees"):  # the words (and the shop) carry the label
        assert float(np.mean(fitted[name].test_proba.argmax(axis=1) == test_labels)) >= 0.9, name
    assert fitted["random_forest"].params["n_estimators"] == FOREST_TREES
    assert fitted["catboost"].columns.categorical == ["shop"] and "review" not in fitted["catboost"].model[0].get_feature_names_out()
    assert float(np.mean(fitted["majority"].test_proba.argmax(axis=1) == test_labels)) <= 0.6
    refit = fit_classical("lightgbm", data)
    assert np.array_equal(refit.test_proba, fitted["lightgbm"].test_proba)  # deterministic: predict can refit it


@pytest.mark.parametrize("name", ["lightgbm", "catboost", "random_forest"])
def test_a_deadline_cuts_a_classical_fit_and_its_recorded_size_refits_it_exactly(tmp_path, registry, name):
    import time

    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.classical import fit_classical

    data = load_task_data(resolve_task(str(_review_task(tmp_path)), registry), registry)
    full = fit_classical(name, data)
    cut = fit_classical(name, data, deadline=time.monotonic())  # already past: the first round or chunk of trees only
    grown = cut.params["n_estimators"]
    assert grown < full.params["n_estimators"]
    assert grown == (FOREST_CHUNK if name == "random_forest" else 1)
    again = fit_classical(name, data, n_estimators=grown)  # what mmbench predict does with the recorded size
    assert np.array_equal(again.test_proba, cut.test_proba)
    assert not np.array_equal(full.test_proba, cut.test_proba)
