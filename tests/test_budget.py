"""The hard budget (--time-limit): a running trial stops at the deadline and keeps its best epoch."""

from __future__ import annotations

import time

import pytest
import torch

from mmbench.search.attrs import RUN_ID
from mmbench.search.budget import STOPPED_TAG, Budget
from mmbench.train.loop import TrainSettings, evaluate, fit

from tests.test_training_loop import _data, _model

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_the_deadline_stops_a_running_epoch_and_keeps_the_best_epoch_so_far(registry):
    calls = []

    def count_batches(encoded):  # called once per batch: 6 batches per epoch
        calls.append(1)
        return torch.zeros(())

    model = _model(registry)
    data = _data()
    # time is up during the 3rd epoch's 3rd batch (a callable deadline: the same check as a clock's, without timing)
    settings = TrainSettings(max_epochs=10, patience=10, batch_size=16, device="cpu", deadline=lambda: len(calls) >= 15)
    result = fit(model, data, settings, n_classes=2, extra_loss=count_batches)
    assert result.stopped == "time_limit"
    assert len(calls) == 15  # stopped right after the batch that crossed the deadline
    assert [r.epoch for r in result.history] == [1, 2]  # the cut epoch is not validated: earlier ones were
    best = max(result.history, key=lambda r: r.validation["accuracy"])
    assert result.best_epoch == best.epoch
    assert evaluate(model, data["validation"], n_classes=2, batch_size=64) == pytest.approx(best.validation)


def test_a_deadline_already_past_still_yields_one_validated_epoch(registry):
    settings = TrainSettings(max_epochs=5, patience=5, batch_size=16, device="cpu", deadline=time.monotonic() - 1)
    result = fit(_model(registry), _data(), settings, n_classes=2)
    assert result.stopped == "time_limit" and len(result.history) == 1 and result.best_epoch == 1


def test_no_deadline_trains_to_the_end(registry):
    result = fit(_model(registry), _data(), TrainSettings(max_epochs=2, patience=5, batch_size=16, device="cpu"), n_classes=2)
    assert result.stopped is None and len(result.history) == 2


def test_stage_deadlines_pass_unused_time_on():
    budget = Budget(100.0, shares={"search": 0.5, "finetune": 0.25, "ensemble": 0.25}, started=0.0)
    assert budget.stage_deadline("search", now=0.0) == pytest.approx(48.5)  # half of the 97 s before the final reserve
    assert budget.stage_deadline("finetune", now=10.0) == pytest.approx(10.0 + 87 * 0.5)  # search ended early
    assert budget.stage_seconds("ensemble", now=99.0) == 0.0


@pytest.mark.parametrize("shares", [{"search": 0.9, "ensemble": 0.3}, {"serch": 0.5}])
def test_bad_stage_shares_are_config_errors(shares):
    from mmbench.errors import ConfigError

    with pytest.raises(ConfigError, match="budget stage"):
        Budget(60.0, shares=shares)


@pytest.mark.slow
def test_a_search_under_time_limit_ignores_n_trials_and_records_the_stopped_trial(tiny_task, search_settings, registry):
    import optuna

    from mmbench.search.study import run_search
    from mmbench.tracking.tracker import Tracker

    task = tiny_task(extra="  n_trials: 1\n").read_text().replace("max_epochs: 2", "max_epochs: 100000").replace(
        "patience: 2", "patience: 100000")
    path = tiny_task("endless")
    path.write_text(task.replace("name: tiny", "name: endless"))
    settings = search_settings(path, time_limit=30.0, pruner="none")  # start-up (stores) counts too
    outcome = run_search(settings, registry=registry)
    study = optuna.load_study(study_name=outcome.study, storage=settings.store.storage)
    stopped = [t for t in study.trials if t.user_attrs.get(STOPPED_TAG) == "time_limit"]
    assert len(stopped) == 1 and stopped[0].state.name == "COMPLETE" and stopped[0].value is not None
    run = Tracker(settings.store.tracking_uri).client.get_run(stopped[0].user_attrs[RUN_ID])
    assert run.data.tags[STOPPED_TAG] == "time_limit"
    assert run.data.metrics["best_epoch"] >= 1


def test_the_finetune_stage_takes_the_best_frozen_configuration_at_a_tenth_of_its_learning_rate():
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution

    from mmbench.search.stages import finetune_params

    study = optuna.create_study(direction="maximize")
    dists = {"encoder.text.pretrained.finetune": CategoricalDistribution([False, True]), "train.lr": FloatDistribution(1e-4, 1e-1, log=True)}
    for value, frozen, lr in ((0.9, True, 1e-2), (0.7, False, 1e-3), (0.8, False, 2e-3)):
        params = {"encoder.text.pretrained.finetune": not frozen, "train.lr": lr}
        study.add_trial(optuna.trial.create_trial(params=params, distributions=dists, value=value))
    assert finetune_params(study) == {"encoder.text.pretrained.finetune": True, "train.lr": pytest.approx(1e-3)}
    empty = optuna.create_study()
    assert finetune_params(empty) is None


def test_presets_search_pretrained_encoders_frozen_and_keep_a_users_choice(registry):
    from mmbench.search.presets import freeze_pretrained
    from mmbench.search.trials import SearchSpace

    space = SearchSpace(fusions=["early"], encoders={"text": ["text.pretrained", "text.bow"], "tabular": ["tabular.mlp"]})
    assert freeze_pretrained(space, registry) == ["encoder.text.pretrained.finetune"]
    assert space.fixed == {"encoder.text.pretrained.finetune": False}  # text.bow and tabular.mlp cannot fine-tune
    chosen = SearchSpace(fusions=["early"], encoders={"text": ["text.pretrained"]}, fixed={"encoder.text.pretrained.finetune": True})
    assert freeze_pretrained(chosen, registry) == [] and chosen.fixed["encoder.text.pretrained.finetune"] is True


def test_the_finetune_stage_unfreezes_what_the_preset_froze_for_its_one_trial():
    import types

    import optuna
    from optuna.distributions import FloatDistribution

    from mmbench.search.attrs import CONFIG
    from mmbench.search.stages import finetune_stage
    from mmbench.search.trials import SearchSpace

    study = optuna.create_study(direction="maximize")
    config = {"encoders": {"text": "text.pretrained"}, "encoder_params": {"text": {"finetune": False}}}
    study.add_trial(optuna.trial.create_trial(params={"train.lr": 1e-2}, distributions={"train.lr": FloatDistribution(1e-4, 1e-1, log=True)},
                                              value=0.8, user_attrs={CONFIG: config}))
    space = SearchSpace(fusions=["early"], encoders={"text": ["text.pretrained"]}, fixed={"encoder.text.pretrained.finetune": False})
    seen = []

    def objective(trial):
        seen.append((dict(space.fixed), trial.suggest_float("train.lr", 1e-4, 1e-1, log=True)))
        return 0.9

    objective.context = types.SimpleNamespace(space=space, devices=types.SimpleNamespace(slots=["cuda:0"]))
    budget = Budget(100.0, shares={"search": 0.5, "finetune": 0.4, "ensemble": 0.1}, started=time.monotonic())
    assert finetune_stage(study, objective, budget)
    assert seen == [({"encoder.text.pretrained.finetune": True}, pytest.approx(1e-3))]  # fine-tuned, at a tenth of the rate
    assert space.fixed == {"encoder.text.pretrained.finetune": False}  # frozen again for any later search stage
