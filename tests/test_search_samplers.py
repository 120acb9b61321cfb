"""Samplers (tpe, random, gp, cmaes, grid), pruners, --seed reproducibility and --n-jobs."""

from __future__ import annotations

import optuna
import pytest

from mmbench.errors import ConfigError
from mmbench.search.study import run_search
from mmbench.tracking.tracker import Tracker

NUMERIC_ONLY = {"fusions": ["early"], "encoders": {"embedding": ["embedding.mlp"]}, "fixed": {"train.batch_size": 32, "train.aux": "none"}}
FIXED_ALL_BUT_TWO = {
    "train.lr": 0.01, "train.weight_decay": 1e-4, "train.batch_size": 32, "train.aux": "none",
    "fusion.early.hidden": 32, "fusion.early.dropout": 0.0,
    "fusion.late.hidden": 32, "fusion.late.dropout": 0.0,
    "encoder.x1.mlp.hidden": 16, "encoder.x1.mlp.n_layers": 1, "encoder.x1.mlp.dropout": 0.0,
    "encoder.x2.mlp.hidden": 16, "encoder.x2.mlp.n_layers": 1, "encoder.x2.mlp.dropout": 0.0,
}


def _runs_by_trial(stores, task):
    tracker = Tracker(stores["tracking_uri"])
    runs = tracker.trial_runs(list(tracker.task_experiments(task)))
    return {int(r.data.tags["mmbench.trial"]): r for r in runs}


def test_grid_runs_each_point_of_the_conditional_space_once(tiny_task, search_settings):
    # left free: fusion (early/late), fusion.early.n_layers (1, 2) and fusion.late.combine (mean, learned)
    settings = search_settings(tiny_task(), sampler="grid", fusions=["early", "late"], max_epochs=1,
                               encoders={"embedding": ["embedding.mlp"]}, fixed=FIXED_ALL_BUT_TWO)
    outcome = run_search(settings)
    study = optuna.load_study(study_name="tiny", storage=settings.store.storage)
    points = sorted(tuple(sorted(t.params.items())) for t in study.trials)
    assert outcome.n_trials == 4 and len(set(points)) == 4
    assert sorted(p for p in points) == sorted([
        (("fusion", "early"), ("fusion.early.n_layers", 1)), (("fusion", "early"), ("fusion.early.n_layers", 2)),
        (("fusion", "late"), ("fusion.late.combine", "learned")), (("fusion", "late"), ("fusion.late.combine", "mean")),
    ])
    # a resumed grid has nothing left to run
    assert run_search(settings).n_trials == 4


def test_huge_grid_is_refused(tiny_task, search_settings):
    with pytest.raises(ConfigError, match="--sampler grid: the space has more than 1000 points"):
        run_search(search_settings(tiny_task(), sampler="grid"))


def test_cmaes_refuses_a_space_with_choices_and_names_them(tiny_task, search_settings):
    with pytest.raises(ConfigError, match=r"--sampler cmaes needs a numeric-only space.*fusion \{[^}]*early[^}]*late[^}]*\}.*train\.batch_size"):
        run_search(search_settings(tiny_task(), sampler="cmaes"))
    with pytest.raises(ConfigError, match="optimises one objective"):
        run_search(search_settings(tiny_task(), sampler="cmaes", objectives="metric,params", **NUMERIC_ONLY))


@pytest.mark.parametrize("sampler", ["cmaes", "gp", "random"])
def test_other_samplers_run(tiny_task, search_settings, sampler):
    settings = search_settings(tiny_task(), sampler=sampler, n_trials=3, max_epochs=1, pruner="none", **NUMERIC_ONLY)
    outcome = run_search(settings)
    assert outcome.n_complete == 3
    study = optuna.load_study(study_name="tiny", storage=settings.store.storage)
    expected = {"cmaes": "CmaEsSampler", "gp": "GPSampler", "random": "RandomSampler"}[sampler]
    assert study.user_attrs["mmbench.task"] == "tiny"
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 3
    from mmbench.search.samplers import make_sampler

    assert type(make_sampler(sampler, seed=0, suggest=lambda t: None)).__name__ == expected


def test_one_seed_reproduces_the_whole_search(tiny_task, search_settings, tmp_path):
    task = tiny_task()
    results = []
    for name in ("a", "b"):
        stores = {"storage": f"sqlite:///{tmp_path / name}-optuna.db", "tracking_uri": f"sqlite:///{tmp_path / name}-mlflow.db"}
        run_search(search_settings(task, n_trials=7, seed=3, **stores))  # 5 random startup trials, then TPE
        study = optuna.load_study(study_name="tiny", storage=stores["storage"])
        results.append([(t.params, t.state.name, t.values, t.intermediate_values) for t in study.trials])
    assert results[0] == results[1]


def test_pruning_stops_obviously_bad_configurations(tiny_task, search_settings, stores):
    # synergy (XOR across modalities): late fusion stays at chance, so the pruner has easy victims
    task = tiny_task("xor", mode="synergy", n_samples=400, extra="  fusions: [early, late]\n")
    outcome = run_search(search_settings(task, n_trials=10, max_epochs=4))
    study = optuna.load_study(study_name="xor", storage=stores["storage"])
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned, [t.state.name for t in study.trials]
    runs = _runs_by_trial(stores, "xor")
    for trial in pruned:
        tags = runs[trial.number].data.tags
        assert tags["mmbench.state"] == "PRUNED" and tags["mmbench.reason"].startswith("pruned at epoch")
    assert outcome.n_complete >= 1


def test_parallel_trials_in_one_process(tiny_task, search_settings, stores):
    outcome = run_search(search_settings(tiny_task(), n_trials=4, n_jobs=2, max_epochs=1))
    study = optuna.load_study(study_name="tiny", storage=stores["storage"])
    assert outcome.n_trials == 4 and all(t.state.name in ("COMPLETE", "PRUNED") for t in study.trials)
    runs = _runs_by_trial(stores, "tiny")
    assert sorted(runs) == [t.number for t in study.trials]
    assert {runs[t.number].info.run_id for t in study.trials} == {t.user_attrs["mlflow_run_id"] for t in study.trials}
