"""``--batch-trials``: a member of a batch trains exactly as alone (also one that joins a stack already
training), pruned members leave the stack, running out of memory halves the stack, and a batched
search records every member as its own trial."""

from __future__ import annotations

import types

import optuna
import pytest
import torch

from mmbench import Encoded, Encoder, hookimpl
from mmbench.data.prepared import SplitTensors
from mmbench.data.schema import ModalityInfo
from mmbench.registry import load_registry
from mmbench.train.batched import BatchedTrainer, Member, fit_group
from mmbench.train.features.encoder import CachedEncoder
from mmbench.train.loop import TrainSettings, fit
from mmbench.train.model import MultimodalModel, _seed_component
from mmbench.train.stacked_adamw import StackedAdamW

DIM, N_CLASSES = 6, 3


class FrozenTanh(Encoder):
    """A frozen 'pretrained' encoder (fixed weights, nothing trainable): its outputs get cached."""

    name = "embedding.frozentanh"
    modality = "embedding"
    space = {}

    def __init__(self, info) -> None:
        super().__init__(info)
        self.register_buffer("weight", torch.linspace(0.5, 1.5, int(info.dim)))
        self.out_dim = int(info.dim)

    @classmethod
    def is_frozen(cls, **hyperparameters) -> bool:
        return True

    def forward(self, batch):
        pooled = torch.tanh(batch["values"] * self.weight)
        return Encoded(pooled=pooled, tokens=pooled[:, None, :], mask=torch.ones(pooled.shape[0], 1, dtype=torch.bool))


@pytest.fixture(scope="module")
def registry():
    plugin = types.ModuleType("batched_test_plugin")
    plugin.mmbench_encoders = hookimpl(lambda: [FrozenTanh])
    plugin.mmbench_encoders.__name__ = "mmbench_encoders"
    return load_registry(extra_plugins=[("batchedtest", plugin)])


def _cached_features(n_rows: int, seed: int) -> SplitTensors:
    generator = torch.Generator().manual_seed(seed)
    inputs = {m: {"pooled": torch.randn(n_rows, DIM, generator=generator)} for m in ("a", "b")}
    labels = (inputs["a"]["pooled"][:, 0] + inputs["b"]["pooled"][:, 1] > 0).long() + (inputs["a"]["pooled"][:, 2] > 1).long()
    return SplitTensors(inputs, labels)


DATA = {"train": _cached_features(96, 0), "validation": _cached_features(48, 1), "test": _cached_features(48, 2)}


def _model(registry, fusion: str, seed: int, fusion_type: type | None = None) -> MultimodalModel:
    encoders = {m: CachedEncoder(FrozenTanh(ModalityInfo(name=m, kind="embedding", columns=(m,), dim=DIM))) for m in ("a", "b")}
    _seed_component(seed, "fusion")
    dims = {"a": DIM, "b": DIM}
    params = {"dropout": 0.0} if "dropout" in registry.get_fusion(fusion).space else {}
    made = fusion_type(dims, N_CLASSES, **params) if fusion_type else registry.create_fusion(fusion, dims, N_CLASSES, **params)
    return MultimodalModel(encoders, made)


def _settings(member: int) -> TrainSettings:
    return TrainSettings(lr=[1e-3, 3e-3, 1e-2][member % 3], weight_decay=[0.0, 1e-3, 1e-2][member % 3], batch_size=16,
                         max_epochs=3, patience=3, seed=10 + member, device="cpu")


def batchable_fusions() -> list[str]:
    registry = load_registry()
    return [name for name in registry.list_fusions() if registry.get_fusion(name).batchable]


def test_built_in_fusions_declare_batching():
    assert {"early", "late", "hybrid", "gmu", "tfn", "lmf"} <= set(batchable_fusions())


@pytest.mark.parametrize("fusion", batchable_fusions())
def test_a_batched_member_reaches_the_metrics_of_the_same_trial_alone(registry, fusion, one_torch_thread):
    members = [Member(_model(registry, fusion, seed=i), _settings(i)) for i in range(3)]
    outcomes = fit_group(members, DATA, n_classes=N_CLASSES)
    for i, outcome in enumerate(outcomes):
        assert outcome.error is None and outcome.batched_with == [0, 1, 2]
        alone = fit(_model(registry, fusion, seed=i), DATA, _settings(i), n_classes=N_CLASSES)
        batched = outcome.result
        assert [r.train_loss for r in batched.history] == pytest.approx([r.train_loss for r in alone.history], rel=1e-4, abs=1e-5)
        assert [r.validation["loss"] for r in batched.history] == pytest.approx(
            [r.validation["loss"] for r in alone.history], rel=1e-4, abs=1e-5)
        assert batched.best_epoch == alone.best_epoch
        assert batched.test == pytest.approx(alone.test, rel=1e-4, abs=1e-5)
    # members really differ (own lr, weight decay, seed), so equality above is not trivial
    assert outcomes[0].result.history[-1].train_loss != pytest.approx(outcomes[2].result.history[-1].train_loss, rel=1e-3)


def test_a_pruned_member_leaves_the_stack_and_the_others_go_on(registry, one_torch_thread):
    def prune_at_first_epoch(report):
        raise optuna.TrialPruned(f"pruned at epoch {report.epoch}")

    epochs_seen: list[int] = []
    members = [Member(_model(registry, "early", seed=0), _settings(0), on_epoch=lambda r: epochs_seen.append(r.epoch)),
               Member(_model(registry, "early", seed=1), _settings(1), on_epoch=prune_at_first_epoch)]
    kept, pruned = fit_group(members, DATA, n_classes=N_CLASSES)
    assert isinstance(pruned.error, optuna.TrialPruned) and pruned.result is None
    assert epochs_seen == [1, 2, 3] and len(kept.result.history) == 3
    alone = fit(_model(registry, "early", seed=0), DATA, _settings(0), n_classes=N_CLASSES)
    assert kept.result.test == pytest.approx(alone.test, rel=1e-4, abs=1e-5)


def test_a_member_that_joins_a_stack_already_training_trains_as_alone(registry, one_torch_thread):
    """Continuous batching: a member admitted after the stack's first pass joins it at the next pass
    (its own step count and epochs), and every member still reaches what it reaches alone."""
    trainer = BatchedTrainer()
    for i in range(2):
        trainer.admit(i, Member(_model(registry, "early", seed=i), _settings(i)), DATA, N_CLASSES)
    outcomes = dict(trainer.run_pass())
    assert not outcomes and trainer.training == 2
    trainer.admit(2, Member(_model(registry, "early", seed=2), _settings(2)), DATA, N_CLASSES)
    passes = 1
    while trainer.busy:
        outcomes.update(trainer.run_pass())
        passes += 1
    assert passes == 4  # members 0 and 1 leave after their third pass, member 2 after its own third (the fourth)
    for i in range(3):
        assert outcomes[i].error is None and outcomes[i].batched_with == [0, 1, 2]
        alone = fit(_model(registry, "early", seed=i), DATA, _settings(i), n_classes=N_CLASSES)
        assert [r.train_loss for r in outcomes[i].result.history] == pytest.approx(
            [r.train_loss for r in alone.history], rel=1e-4, abs=1e-5)
        assert outcomes[i].result.test == pytest.approx(alone.test, rel=1e-4, abs=1e-5)


@pytest.mark.parametrize("grad_clip", [0.0, 0.5])
def test_the_stacked_optimiser_steps_each_row_as_adamw_steps_its_member_alone(grad_clip):
    """Rows with their own lr and weight decay, clipped by their own norm, one joining late (its own step
    count) and one leaving midway: each row follows what torch.optim.AdamW (and clip_grad_norm_) make
    of the same gradients for that member."""
    generator = torch.Generator().manual_seed(0)
    lrs, decays = [1e-3, 3e-2, 1e-1, 5e-2], [0.0, 1e-2, 0.3, 0.1]
    members = [{"w": torch.randn(4, 3, generator=generator), "b": torch.randn(3, generator=generator)} for _ in lrs]
    alone = [{n: p.clone().requires_grad_() for n, p in m.items()} for m in members]
    optimizers = [torch.optim.AdamW(list(a.values()), lr=lr, weight_decay=wd) for a, lr, wd in zip(alone, lrs, decays)]
    stack = StackedAdamW(members[:3], ["w", "b"], lr=lrs[:3], weight_decay=decays[:3])
    rows = [0, 1, 2]
    for step in range(7):
        if step == 2:  # member 3 joins the stack
            stack.add([members[3]], lr=lrs[3:], weight_decay=decays[3:])
            rows.append(3)
        if step == 4:  # member 1 leaves it
            rows = [0, 2, 3]
            stack.keep([0, 2, 3])
        grads = {n: torch.randn(len(rows), *p.shape[1:], generator=generator) * 3 for n, p in stack.params.items()}
        for n, p in stack.params.items():
            p.grad = grads[n].clone()
        stack.step(grad_clip=grad_clip)
        for row, member in enumerate(rows):
            for n, p in alone[member].items():
                p.grad = grads[n][row].clone()
            if grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(list(alone[member].values()), grad_clip)
            optimizers[member].step()
    for row, member in enumerate(rows):
        for n, p in stack.params.items():
            torch.testing.assert_close(p[row], alone[member][n].detach(), rtol=1e-5, atol=1e-6)
    assert all(p.grad is None for p in stack.params.values())
    written = [{n: torch.zeros_like(p[0]) for n, p in stack.params.items()} for _ in rows]
    stack.write_back(written)
    torch.testing.assert_close(written[2]["w"], alone[3]["w"].detach(), rtol=1e-5, atol=1e-6)


class RefusesToBeBatched(torch.nn.Module):
    """A fusion that runs out of memory whenever it is called under ``torch.vmap`` (any group above one)."""

    batchable = True

    def __init__(self, dims, n_outputs, **_):
        super().__init__()
        self.head = torch.nn.Linear(sum(dims.values()), n_outputs)

    def forward(self, encoded):
        pooled = torch.cat([encoded[m].pooled for m in sorted(encoded)], dim=-1)
        if torch._C._functorch.is_batchedtensor(pooled):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return self.head(pooled)


def test_running_out_of_memory_halves_the_group_until_members_fit(registry, one_torch_thread):
    members = [Member(_model(registry, "early", seed=i, fusion_type=RefusesToBeBatched), _settings(i)) for i in range(4)]
    outcomes = fit_group(members, DATA, n_classes=N_CLASSES)
    assert [o.oom_splits for o in outcomes] == [2, 2, 2, 2]  # 4 -> 2 + 2 -> 1 + 1 + 1 + 1
    assert [o.batched_with for o in outcomes] == [[0], [1], [2], [3]]
    alone = fit(_model(registry, "early", seed=2, fusion_type=RefusesToBeBatched), DATA, _settings(2), n_classes=N_CLASSES)
    assert outcomes[2].error is None and outcomes[2].result.test == pytest.approx(alone.test, rel=1e-6)


def test_a_batched_search_records_each_member_as_its_own_trial(registry, tiny_task, search_settings, tmp_path, one_torch_thread):
    from mlflow.tracking import MlflowClient

    from mmbench.search.study import run_search

    task = tiny_task(n_samples=120)
    settings = search_settings(task, n_trials=4, batch_trials=4, fusions=["early", "tfn"], sampler="random",
                               encoders={"x1": ["embedding.frozentanh"], "x2": ["embedding.frozentanh"]},
                               fixed={"fusion.early.hidden": 16, "fusion.early.n_layers": 1, "fusion.early.dropout": 0.0,
                                      "fusion.tfn.proj": 2, "fusion.tfn.hidden": 16, "fusion.tfn.dropout": 0.0,
                                      "train.batch_size": 32, "train.aux": "none"},
                               cache_dir=tmp_path / "features", log_model=False, ensemble=False, classical=False)
    outcome = run_search(settings, registry=registry)
    study = optuna.load_study(study_name=outcome.study, storage=settings.store.storage)
    assert len(study.trials) == 4 and all(t.state.name == "COMPLETE" for t in study.trials)
    by_fusion: dict[str, list[int]] = {}
    for t in study.trials:
        by_fusion.setdefault(t.params["fusion"], []).append(t.number)
    runs = MlflowClient(settings.store.tracking_uri).search_runs([outcome.experiment_id], "tags.`mmbench.trial` != ''")
    assert len(runs) == 4
    for run in runs:
        number = int(run.data.tags["mmbench.trial"])
        group = by_fusion[run.data.tags["mmbench.fusion"]]
        expected = ",".join(map(str, group)) if len(group) > 1 else None
        assert run.data.tags.get("mmbench.batched_with") == expected
        assert study.trials[number].user_attrs.get("batched_with") == expected
        assert run.data.metrics["val_score"] == pytest.approx(study.trials[number].value)


@pytest.mark.parametrize("flags, message", [({"batch_trials": 0}, "--batch-trials must be an integer"),
                                            ({"batch_trials": 4, "n_jobs": 2}, "cannot be combined")])
def test_bad_batch_trials_is_a_config_error_naming_the_flag(flags, message):
    from mmbench.errors import ConfigError
    from mmbench.search import SearchSettings

    with pytest.raises(ConfigError, match=message):
        SearchSettings.of("tiny", **flags)


_TIMED = ("duration_s", "epoch_seconds", "train_epoch_s", "latency_ms_b1", "latency_ms_batched", "peak_rss_mb", "peak_gpu_mb")


def test_a_batched_members_run_records_what_the_trial_records_alone_in_one_write(registry, tiny_task, search_settings,
                                                                              tmp_path, monkeypatch, one_torch_thread):
    import sqlite3

    from mlflow.tracking import MlflowClient

    import mmbench.train.efficiency as efficiency
    from mmbench.search.study import run_search

    writes: dict[str, int] = {}
    original_log_batch, original_latency = MlflowClient.log_batch, efficiency.measure_latency
    timed: list[int] = []

    def counting_log_batch(self, run_id, *args, **kwargs):
        writes[run_id] = writes.get(run_id, 0) + 1
        return original_log_batch(self, run_id, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", counting_log_batch)
    monkeypatch.setattr(efficiency, "measure_latency", lambda *a, **k: timed.append(1) or original_latency(*a, **k))
    task = tiny_task(n_samples=120)
    runs, timings = {}, {}
    for k in (4, 1):
        folder = tmp_path / f"k{k}"
        folder.mkdir()
        settings = search_settings(task, n_trials=4, batch_trials=k, fusions=["early"], sampler="random", pruner="none",
                                   encoders={"x1": ["embedding.frozentanh"], "x2": ["embedding.frozentanh"]},
                                   fixed={"fusion.early.hidden": 16, "fusion.early.n_layers": 1, "fusion.early.dropout": 0.0,
                                          "train.batch_size": 32, "train.aux": "none", "train.lr": 0.003,
                                          "train.weight_decay": 1e-4},  # trials differ by seed only (threads draw in any order)
                                   storage=f"sqlite:///{folder / 'optuna.db'}", tracking_uri=f"sqlite:///{folder / 'mlflow.db'}",
                                   cache_dir=tmp_path / "features", log_model=False, ensemble=False, classical=False)
        writes.clear()
        timed.clear()
        outcome = run_search(settings, registry=registry)
        client = MlflowClient(settings.store.tracking_uri)
        found = client.search_runs([outcome.experiment_id], "tags.`mmbench.trial` != ''")
        runs[k] = {int(r.data.tags["mmbench.trial"]): r for r in found}
        timings[k] = len(timed)
        if k == 4:  # every member's metrics, params and tags in one log_batch
            assert {writes.get(r.info.run_id, 0) for r in found} == {1}
        with sqlite3.connect(folder / "optuna.db") as db:  # asked trials send heartbeats as optimize()'s do
            assert len({row[0] for row in db.execute("SELECT trial_id FROM trial_heartbeats")}) == 4
        histories = {(k, n, key): [(m.step, m.value) for m in client.get_metric_history(r.info.run_id, key)]
                     for n, r in runs[k].items() for key in r.data.metrics if key.startswith("val_")}
        runs[k] = (runs[k], histories)
    (batched, batched_history), (alone, alone_history) = runs[4], runs[1]
    assert sorted(batched) == sorted(alone) == [0, 1, 2, 3]
    assert timings == {4: 2, 1: 8}  # one structure: latency timed once for the batch (batch 1 and batched), not per member
    for number, run in batched.items():
        other = alone[number]
        assert run.data.params == other.data.params
        assert set(run.data.tags) - {"mmbench.batched_with"} == set(other.data.tags) - {"mmbench.batched_with"}
        assert run.data.tags["mmbench.state"] == other.data.tags["mmbench.state"] == "COMPLETE"
        assert run.info.status == "FINISHED"
        assert set(run.data.metrics) == set(other.data.metrics)
        for key, value in run.data.metrics.items():
            if key not in _TIMED:
                assert value == pytest.approx(other.data.metrics[key], rel=1e-4, abs=1e-5), key
        latency = {batched[n].data.metrics["latency_ms_b1"] for n in batched}
        assert len(latency) == 1  # the batch's one measurement, recorded for each member
        for key in [key for (k, n, key) in batched_history if n == number]:
            steps = batched_history[(4, number, key)]
            assert [s for s, _ in steps] == [s for s, _ in alone_history[(1, number, key)]], key
            assert [v for _, v in steps] == pytest.approx([v for _, v in alone_history[(1, number, key)]], rel=1e-4, abs=1e-5)


def test_a_deferred_run_is_written_whole_when_it_ends_within_mlflows_batch_limits(tmp_path):
    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = tracker.experiment_id("deferred")
    parent = tracker.create_run(experiment, tags={}, run_name="parent")
    params = {f"p{i}": i for i in range(150)}  # over MLflow's 100 params per log_batch
    with tracker.deferred():
        run_id = tracker.start_trial(experiment, parent, run_name="t", tags={"mmbench.trial": "0"}, params=params)
        for step in range(1, 601):  # 1,200 metric values: over MLflow's 1,000 per log_batch
            tracker.log_metrics(run_id, {"val_loss": 1 / step, "val_accuracy": step / 600}, step=step)
        tracker.set_tags(run_id, {"mmbench.note": "first"})
        tracker.set_tags(run_id, {"mmbench.note": "second"})
        held = tracker.get_run(run_id)
        assert not held.data.metrics and not held.data.params  # nothing written while the run is open
        tracker.finish(run_id, "COMPLETE")
        tracker.set_tags(run_id, {"mmbench.after": "yes"})  # after the end: written at once
        assert tracker.get_run(run_id).data.tags["mmbench.after"] == "yes"
    run = tracker.get_run(run_id)
    assert run.data.params == {k: str(v) for k, v in params.items()}
    assert len(tracker.metric_history(run_id, "val_loss")) == 600 and run.data.metrics["val_accuracy"] == 1.0
    assert run.data.tags["mmbench.note"] == "second" and run.data.tags["mmbench.state"] == "COMPLETE"
    assert run.info.status == "FINISHED"
    outside = tracker.start_trial(experiment, parent, run_name="u", tags={}, params={"a": 1})
    tracker.log_metrics(outside, {"val_loss": 0.5})
    assert tracker.get_run(outside).data.metrics == {"val_loss": 0.5}  # not deferred: written at once


def test_members_whose_cached_encoders_differ_in_a_redone_hyperparameter_are_not_batched_together(registry):
    from mmbench.train.batched import batch_key

    def member(pooling: str) -> Member:
        model = _model(registry, "early", seed=0)
        for name, encoder in model.encoders.items():  # as FeatureCache.trial_inputs builds them: params applied per output
            model.encoders[name] = CachedEncoder(encoder.inner, {"pooling": pooling})
        return Member(model, _settings(0))

    assert batch_key(member("mean")) == batch_key(member("mean"))
    assert batch_key(member("mean")) != batch_key(member("cls"))  # the batch would run the first member's pooling for all


def test_trials_asking_for_the_same_preprocessing_at_once_preprocess_once():
    import threading
    import time as clock

    import datasets

    from mmbench.data.prepared import PreparedData

    fits: list[int] = []

    class SlowPreprocessor:
        key = "slow"

        def fit(self, split):
            fits.append(1)
            clock.sleep(0.05)  # long enough for every thread to arrive while the first one works
            return ModalityInfo(name="x", kind="embedding", columns=("x",), dim=1)

        def transform(self, split):
            return {"values": torch.tensor(split["x"], dtype=torch.float32)[:, None]}

    splits = {name: datasets.Dataset.from_dict({"x": [1.0, 2.0, 3.0]}) for name in ("train", "validation", "test")}
    data = PreparedData(splits=splits, schema=None, fingerprint="f", split_sizes={n: 3 for n in splits}, memory_budget=10**9)
    got = []
    threads = [threading.Thread(target=lambda: got.append(data.modality("x", SlowPreprocessor()))) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fits) == 1 and len(got) == 4 and all(g is got[0] for g in got)  # the members of a batch share one result


def test_balanced_class_weights_train_a_batched_member_as_alone(registry, one_torch_thread):
    import dataclasses

    def settings(i: int) -> TrainSettings:
        return dataclasses.replace(_settings(i), class_weight="balanced")

    outcomes = fit_group([Member(_model(registry, "early", seed=i), settings(i)) for i in range(2)], DATA, n_classes=N_CLASSES)
    for i, outcome in enumerate(outcomes):
        alone = fit(_model(registry, "early", seed=i), DATA, settings(i), n_classes=N_CLASSES)
        unweighted = fit(_model(registry, "early", seed=i), DATA, _settings(i), n_classes=N_CLASSES)
        assert outcome.batched_with == [0, 1]
        assert [r.train_loss for r in outcome.result.history] == pytest.approx([r.train_loss for r in alone.history], rel=1e-4)
        assert alone.history[0].train_loss != pytest.approx(unweighted.history[0].train_loss, rel=1e-4)  # the weights matter here


def test_a_multi_label_member_tunes_its_threshold_as_alone(registry, one_torch_thread):
    def multi_hot(split: SplitTensors) -> SplitTensors:
        a, b = split.inputs["a"]["pooled"], split.inputs["b"]["pooled"]
        return SplitTensors(split.inputs, torch.stack([a[:, 0] > 0, b[:, 1] > 0, a[:, 2] + b[:, 2] > 0.5], dim=1).float())

    import dataclasses

    def settings(i: int) -> TrainSettings:
        return dataclasses.replace(_settings(i), metric="micro_f1")

    data = {name: multi_hot(split) for name, split in DATA.items()}
    outcomes = fit_group([Member(_model(registry, "early", seed=i), settings(i)) for i in range(2)], data, n_classes=N_CLASSES)
    for i, outcome in enumerate(outcomes):
        alone = fit(_model(registry, "early", seed=i), data, settings(i), n_classes=N_CLASSES)
        assert outcome.error is None and outcome.batched_with == [0, 1]
        assert outcome.result.validation["threshold"] == alone.validation["threshold"]
        assert outcome.result.test == pytest.approx(alone.test, rel=1e-4, abs=1e-5)


def test_a_stop_signal_during_a_batched_search_ends_it_with_every_trial_settled(registry, tiny_task, search_settings, tmp_path,
                                                                                monkeypatch, one_torch_thread):
    """SIGTERM while members train (sent at the third pass): the search stops after that pass, raises
    StopRequested, and leaves no trial RUNNING in Optuna and no run RUNNING in MLflow (the members
    interrupted in training are KILLED)."""
    import os
    import signal

    from mlflow.tracking import MlflowClient

    from mmbench.infra.signals import StopRequested, graceful_stop
    from mmbench.search.study import run_search
    from mmbench.train import stack

    passes = []
    run_pass = stack.Stack.run_pass

    def signalling_pass(self):
        passes.append(len(self.running))
        if len(passes) == 3:
            os.kill(os.getpid(), signal.SIGTERM)
        return run_pass(self)

    monkeypatch.setattr(stack.Stack, "run_pass", signalling_pass)
    task = tiny_task(n_samples=160)
    settings = search_settings(task, n_trials=12, batch_trials=3, fusions=["early"], sampler="random", pruner="none", max_epochs=30,
                               encoders={"x1": ["embedding.frozentanh"], "x2": ["embedding.frozentanh"]},
                               fixed={"fusion.early.hidden": 16, "fusion.early.n_layers": 1, "fusion.early.dropout": 0.0,
                                      "train.batch_size": 32, "train.aux": "none", "train.patience": 30},
                               cache_dir=tmp_path / "features", log_model=False, ensemble=False, classical=False)
    with pytest.raises(StopRequested), graceful_stop():
        run_search(settings, registry=registry)
    assert len(passes) == 3 and passes[0] == 3  # the first pass started with the whole stack; none after the signal
    study = optuna.load_study(study_name=optuna.get_all_study_names(settings.store.storage)[0], storage=settings.store.storage)
    asked = [t for t in study.trials if t.state.name != "WAITING"]  # the interrupted ones are also enqueued again, for a resume
    assert [t.state.name for t in asked] == ["FAIL"] * 3 and all("SIGTERM" in t.user_attrs["reason"] for t in asked)
    client = MlflowClient(settings.store.tracking_uri)
    runs = client.search_runs([e.experiment_id for e in client.search_experiments()], "tags.`mmbench.trial` != ''")
    assert sorted(r.info.status for r in runs) == ["KILLED"] * 3
