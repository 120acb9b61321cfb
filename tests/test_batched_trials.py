"""``--batch-trials``: a member of a batch trains exactly as alone, pruned members leave the stack,
running out of memory halves the group, and a batched search records every member as its own trial."""

from __future__ import annotations

import types

import optuna
import pytest
import torch

from mmbench import Encoded, Encoder, hookimpl
from mmbench.data.prepared import SplitTensors
from mmbench.data.schema import ModalityInfo
from mmbench.registry import load_registry
from mmbench.train.batched import Member, fit_group
from mmbench.train.features.encoder import CachedEncoder
from mmbench.train.loop import TrainSettings, fit
from mmbench.train.model import MultimodalModel, _seed_component

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
