"""k-fold cross-validation (``split: {folds: K, repeats: R}``): the folds, the trial's record, the
leaderboard's mean ± std, and the refused settings."""

from __future__ import annotations

import json
import statistics

import datasets
import numpy as np
import optuna
import pytest
import torch

from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.prepared import SplitTensors, fold_splits
from mmbench.data.provider import RawData
from mmbench.data.schema import ModalityInfo
from mmbench.data.splits import SplitSpec
from mmbench.errors import ConfigError, DataError
from mmbench.search.trials import TrialConfig
from mmbench.tasks.files import parse_task
from mmbench.train.folds import fit_folds
from mmbench.train.loop import TrainSettings
from mmbench.train.model import build_model
from tests.cli import run_cli


def _task(tmp_path, split: str = "{test: 0.25, seed: 0, folds: 5}", name: str = "kfold") -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"name: {name}\ndata:\n  provider: synthetic\n"
        "  options: {n_samples: 200, n_modalities: 2, dim: 4, mode: mixed, noise: 0.2}\n"
        f"label: label\nmetric: accuracy\nsplit: {split}\n"
        "search:\n  max_epochs: 2\n  patience: 2\n  fusions: [early]\n")
    return str(path)


def _raw(n: int = 120, groups: list[str] | None = None) -> RawData:
    columns = {"x": [float(i) for i in range(n)], "label": ["a" if i % 3 else "b" for i in range(n)]}
    if groups is not None:
        columns["g"] = groups
    return RawData(splits={"all": datasets.Dataset.from_dict(columns)})


def test_five_folds_are_recorded_per_fold_with_mean_and_std_on_the_run_and_the_leaderboard(tmp_path, stores):
    store = ["--tracking-uri", stores["tracking_uri"]]
    result = run_cli("search", _task(tmp_path), "--n-trials", "1", "--pruner", "none", "--quiet", "--device", "cpu",
                  "--storage", stores["storage"], *store)
    assert result.returncode == 0, result.stderr
    trial = optuna.load_study(study_name="kfold", storage=stores["storage"]).trials[0]
    assert trial.state.name == "COMPLETE"

    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(stores["tracking_uri"])
    (run,) = tracker.trial_runs(list(tracker.task_experiments("kfold")))
    metrics = run.data.metrics
    val = [metrics[f"val_accuracy_fold{i}"] for i in range(5)]
    test = [metrics[f"test_accuracy_fold{i}"] for i in range(5)]
    assert "val_accuracy_fold5" not in metrics and metrics["n_folds"] == 5
    assert metrics["val_score"] == pytest.approx(statistics.fmean(val)) == pytest.approx(metrics["val_accuracy_mean"])
    assert trial.value == pytest.approx(metrics["val_score"])  # what Optuna ranks is the mean over folds
    assert metrics["test_score"] == pytest.approx(statistics.fmean(test))
    assert metrics["test_accuracy_std"] == pytest.approx(statistics.stdev(test))
    # the pruner heard the running mean after each fold, steps 0..4 (epochs are not reported beside them)
    assert sorted(trial.intermediate_values) == [0, 1, 2, 3, 4]
    assert trial.intermediate_values[2] == pytest.approx(statistics.fmean(val[:3]))
    # epoch metrics are numbered across folds: one history, no step logged twice
    steps = [m.step for m in tracker.metric_history(run.info.run_id, "train_loss")]
    assert len(steps) == len(set(steps)) >= 5

    from mmbench.tracking.leaderboard import leaderboard, render

    rows = leaderboard(tracker, task="kfold")
    (row,) = json.loads(render(rows, "json"))["rows"]
    assert row["n_folds"] == 5 and row["n_seeds"] == 1
    assert row["test_score"] == pytest.approx(statistics.fmean(test))
    assert row["test_std"] == pytest.approx(statistics.stdev(test))
    table = run_cli("leaderboard", "--format", "markdown", *store)
    assert f"{statistics.fmean(test):.4f} ± {statistics.stdev(test):.4f}" in table.stdout and "5 folds" in table.stdout

    again = run_cli("reproduce", run.info.run_id, *store)  # retrains every fold, as the search did
    assert again.returncode == 0, again.stdout + again.stderr
    assert "identical" in again.stdout


@pytest.mark.parametrize("repeats", [1, 2])
def test_folds_are_disjoint_and_cover_train_and_validation(repeats):
    spec = DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(test=0.2, folds=4, repeats=repeats))
    data = prepare(_raw(), spec)
    pool = data.split_sizes["train"] + data.split_sizes["validation"]
    assert len(data.folds) == 4 * repeats
    for repeat in range(repeats):
        folds = data.folds[4 * repeat : 4 * (repeat + 1)]
        joined = np.concatenate(folds)
        assert sorted(joined.tolist()) == list(range(pool))  # every row once per repeat
        assert all(18 <= len(f) <= 30 for f in folds)  # near a quarter of the 96 rows each
    if repeats == 2:
        assert any(not np.array_equal(a, b) for a, b in zip(data.folds[:4], data.folds[4:]))  # a repeat draws new folds

    # a fold's tensors are row selections of train then validation, its test untouched
    x = torch.cat([torch.tensor(data.splits[s]["x"]) for s in ("train", "validation")])
    tensors = {s: SplitTensors({"m": {"v": torch.tensor(data.splits[s]["x"])}}, data.labels(s)) for s in ("train", "validation", "test")}
    for fold, split in zip(data.folds, fold_splits(tensors, data.folds)):
        assert sorted(split["validation"].inputs["m"]["v"].tolist()) == sorted(x[fold].tolist())
        assert len(split["train"]) + len(split["validation"]) == pool
        assert not set(split["train"].inputs["m"]["v"].tolist()) & set(split["validation"].inputs["m"]["v"].tolist())
        assert split["test"] is tensors["test"]


def test_grouped_folds_never_split_a_group():
    groups = [f"g{i % 17}" for i in range(170)]
    spec = DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(test=0.2, folds=5, repeats=2, group_column="g"))
    data = prepare(_raw(170, groups), spec)
    pool_groups = np.asarray(list(data.splits["train"]["g"]) + list(data.splits["validation"]["g"]))
    assert not set(pool_groups) & set(data.splits["test"]["g"])  # test is held out by group too
    for repeat in range(2):
        seen: dict[str, int] = {}
        for index, fold in enumerate(data.folds[5 * repeat : 5 * (repeat + 1)]):
            for group in set(pool_groups[fold].tolist()):
                assert seen.setdefault(group, index) == index, group  # a group's rows in one fold only
        assert len(seen) == len(set(pool_groups))
    assert data.notes["folds"]["grouped_by"] == "'g'"


def test_grouped_folds_without_a_class_and_too_few_groups_are_errors():
    # class "rare" lives in two groups: one for test, one left for the three folds, two of which lack it
    groups = [f"g{i % 10}" for i in range(120)]
    labels = ["rare" if g in ("g0", "g1") else ("a" if i % 2 else "b") for i, g in enumerate(groups)]
    raw = RawData(splits={"all": datasets.Dataset.from_dict({"x": [float(i) for i in range(120)], "g": groups, "label": labels})})
    spec = SplitSpec(test=0.2, folds=3, group_column="g")
    with pytest.raises(DataError, match="k-fold split by 'g': fold . has no row of class\\(es\\) 'rare'.*fewer split.folds"):
        prepare(raw, DataSpec(label="label", modalities={"x": "numeric"}, split=spec))
    allowed = prepare(raw, DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(test=0.2, folds=3, group_column="g",
                                                                                                  allow_missing_classes=True)))
    assert len(allowed.folds) == 3
    with pytest.raises(ConfigError, match="split.folds: 10 folds need at least 10 groups of 'g'; there are [89]$"):
        prepare(_raw(120, groups), DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(folds=10, group_column="g")))


def test_folds_change_the_fingerprint_and_no_folds_keeps_it():
    plain = prepare(_raw(), DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec()))
    folded = prepare(_raw(), DataSpec(label="label", modalities={"x": "numeric"}, split=SplitSpec(folds=3)))
    assert plain.folds == () and folded.folds
    assert plain.fingerprint != folded.fingerprint  # k-fold scores never rank beside one split's


@pytest.mark.parametrize(("settings", "message"), [
    ({"folds": 1}, "split.folds must be an integer of at least 2, got 1"),
    ({"folds": "5"}, "split.folds must be an integer of at least 2"),
    ({"folds": True}, "split.folds must be an integer of at least 2"),
    ({"folds": 3, "repeats": 0}, "split.repeats must be an integer of at least 1"),
    ({"repeats": 2}, "set split.folds too"),
])
def test_bad_fold_settings_are_one_line_config_errors(settings, message):
    with pytest.raises(ConfigError, match=message):
        SplitSpec(**settings)


def test_folds_with_a_validation_fraction_are_refused_by_the_task_file():
    content = {"name": "t", "data": {"provider": "synthetic"}, "label": "label", "split": {"folds": 5, "validation": 0.2}}
    with pytest.raises(ConfigError, match="split.validation does not apply with split.folds"):
        parse_task(content, source="t.yaml")


def test_cli_refuses_bad_folds_and_batched_trials_with_exit_2(tmp_path, stores):
    bad = run_cli("inspect", _task(tmp_path, "{folds: 1}", name="bad"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert "split.folds must be an integer of at least 2, got 1" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    batched = run_cli("search", _task(tmp_path), "--n-trials", "2", "--batch-trials", "2", "--quiet", "--device", "cpu",
                   "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"])
    assert batched.returncode == 2 and "--batch-trials does not combine with split.folds" in batched.stderr


def test_fit_folds_scores_out_of_fold_numbers_epochs_across_folds_and_stops_at_the_deadline(registry, one_torch_thread):
    infos = {"x": ModalityInfo(name="x", kind="embedding", columns=("x",), dim=6)}
    g = torch.Generator().manual_seed(0)

    def split(n: int) -> SplitTensors:
        values = torch.randn(n, 6, generator=g)
        return SplitTensors({"x": {"values": values}}, (values[:, 0] > 0).long())

    tensors = {"train": split(96), "validation": split(48), "test": split(40)}
    config = TrialConfig("early", {"hidden": 8, "n_layers": 1, "dropout": 0.0}, {"x": "embedding.mlp"},
                         {"x": {"hidden": 8, "n_layers": 1, "dropout": 0.0}}, {}, seed=0)
    folds = tuple(np.sort(f) for f in np.array_split(np.random.default_rng(0).permutation(144), 4))
    settings = TrainSettings(max_epochs=3, patience=3, batch_size=16, device="cpu")
    epochs: list[int] = []
    done = fit_folds(lambda: build_model(config, infos, 2, registry), tensors, folds, settings, n_classes=2,
                     on_epoch=lambda report: epochs.append(report.epoch), probabilities=True)
    assert len(done.fits) == 4 and epochs == list(range(1, len(epochs) + 1))  # steps unique within the trial
    assert done.result.validation["accuracy"] == pytest.approx(statistics.fmean(f.validation["accuracy"] for f in done.fits))
    assert done.oof_proba.shape == (144, 2) and np.allclose(done.oof_proba.sum(axis=1), 1, atol=1e-5)
    assert done.test_proba.shape == (40, 2) and len(done.oof_labels) == 144
    # each row's out-of-fold prediction is that of the model that validated on it
    accuracy = (done.oof_proba.argmax(axis=1)[folds[0]] == done.oof_labels[folds[0]]).mean()
    assert accuracy == pytest.approx(done.fits[0].validation["accuracy"], abs=1e-6)

    finished: list[int] = []
    timed = fit_folds(lambda: build_model(config, infos, 2, registry), tensors, folds,
                      TrainSettings(max_epochs=3, patience=3, batch_size=16, device="cpu", deadline=lambda: bool(finished)),
                      n_classes=2, on_fold=lambda index, fits: finished.append(index), probabilities=True)
    assert len(timed.fits) == 1 and timed.result.stopped == "time_limit" and timed.oof_proba is None
