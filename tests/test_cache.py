"""The frozen-encoder feature cache: hit on later trials and searches, miss when a key input changes,
same metrics with and without it, and a saved model that reloads without the cache."""

from __future__ import annotations

import os
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from mmbench import Categorical, Encoded, Encoder, hookimpl
from mmbench.train.features.compute import compute_features
from mmbench.train.features.encoder import CachedEncoder
from mmbench.train.features.store import FeatureCache, write_safetensors
from mmbench.search.trials import TrialConfig
from mmbench.data.preprocess.base import EmbeddingPreprocessor
from mmbench.registry import load_registry
from mmbench.search.study import run_search

CHECKPOINT_VARIABLE = "MMBENCH_TEST_FROZEN_CHECKPOINT"
SCALE_VARIABLE = "MMBENCH_TEST_FROZEN_SCALE"
DIM = 4  # the tiny_task fixture's feature size


class ScaledPreprocessor(EmbeddingPreprocessor):
    """Embedding vectors times ``scale``: a preprocessing whose option changes the tensors."""

    def __init__(self, info, checkpoint: Path, scale: float) -> None:
        super().__init__(info)
        self.checkpoint, self.scale = checkpoint, scale

    def options(self):
        return {"checkpoint": str(self.checkpoint), "scale": self.scale}

    def fit(self, train):
        info = super().fit(train)
        return info.with_updates(extra={**dict(info.extra), "checkpoint": str(self.checkpoint)})

    def transform(self, split):
        return {"values": super().transform(split)["values"] * self.scale}


class FrozenProjection(Encoder):
    """A 'pretrained' encoder: fixed weights read from a checkpoint folder, no trainable parameter.

    Element-wise, so its outputs do not depend on how rows are batched (bit-for-bit comparisons).
    """

    name = "embedding.frozenproj"
    modality = "embedding"
    space = {}
    rows_seen = 0  # rows passed through forward, across instances

    def __init__(self, info) -> None:
        super().__init__(info)
        weight = np.load(Path(info.extra["checkpoint"]) / "weights.npy")
        self.register_buffer("weight", torch.from_numpy(weight))
        self.out_dim = int(info.dim)

    @classmethod
    def is_frozen(cls, **hyperparameters) -> bool:
        return True

    @classmethod
    def preprocessor(cls, info, **hyperparameters):
        return ScaledPreprocessor(info, Path(os.environ[CHECKPOINT_VARIABLE]), float(os.environ.get(SCALE_VARIABLE, "1")))

    def forward(self, batch):
        FrozenProjection.rows_seen += int(batch["values"].shape[0])
        pooled = torch.tanh(batch["values"] * self.weight)
        tokens = torch.stack([pooled, -pooled], dim=1)
        return Encoded(pooled=pooled, tokens=tokens, mask=torch.ones(tokens.shape[:2], dtype=torch.bool))


class SignedProjection(FrozenProjection):
    """FrozenProjection with a ``sign`` applied after the cache: one entry serves both signs."""

    name = "embedding.signedproj"
    space = {"sign": Categorical([1, -1])}

    def __init__(self, info, sign: int = 1) -> None:
        super().__init__(info)
        self.sign = sign

    @classmethod
    def cache_params(cls, **hyperparameters):
        return {k: v for k, v in hyperparameters.items() if k != "sign"}

    @classmethod
    def from_cache(cls, encoded, **hyperparameters):
        sign = hyperparameters.get("sign", 1)
        return Encoded(pooled=encoded.pooled * sign, tokens=encoded.tokens * sign, mask=encoded.mask)

    def forward(self, batch):
        return type(self).from_cache(super().forward(batch), sign=self.sign)


def write_checkpoint(folder: Path, seed: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "weights.npy", np.random.default_rng(seed).normal(size=DIM).astype(np.float32))
    return folder


@pytest.fixture
def frozen(tmp_path, monkeypatch):
    """A registry with the frozen test encoder, its checkpoint and a fresh row counter."""
    monkeypatch.setenv(CHECKPOINT_VARIABLE, str(write_checkpoint(tmp_path / "checkpoint-a", seed=1)))
    monkeypatch.delenv(SCALE_VARIABLE, raising=False)
    monkeypatch.setattr(FrozenProjection, "rows_seen", 0)
    plugin = types.ModuleType("frozen_test_plugin")
    plugin.mmbench_encoders = hookimpl(lambda: [FrozenProjection, SignedProjection])
    plugin.mmbench_encoders.__name__ = "mmbench_encoders"
    return load_registry(extra_plugins=[("frozentest", plugin)])


def _config(seed: int = 0, fusion: str = "film") -> TrialConfig:
    return TrialConfig(
        fusion=fusion, fusion_params={}, encoders={"x1": "embedding.frozenproj", "x2": "embedding.mlp"},
        encoder_params={"x1": {}, "x2": {}}, train={"batch_size": 32, "max_epochs": 2}, seed=seed,
    )


def _trial_inputs(cache: FeatureCache, registry, task_path: Path, fusion: str = "film"):
    """A trial's inputs; its fusion (film by default) reads token states."""
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.model import preprocessors_for
    from mmbench.tasks.files import resolve_task

    data = load_task_data(resolve_task(str(task_path), registry), registry)
    config = _config(fusion=fusion)
    return data, cache.trial_inputs(config, data, preprocessors_for(config, data.schema, registry), registry)


def test_features_are_computed_once_and_stand_in_for_the_encoder(frozen, tiny_task, tmp_path):
    task = tiny_task(n_samples=120)
    cache = FeatureCache(root=tmp_path / "cache")
    data, (infos, tensors, prebuilt) = _trial_inputs(cache, frozen, task)
    assert (cache.hits, cache.misses) == (0, 1)
    assert FrozenProjection.rows_seen == 120  # every row of every split, once
    assert set(prebuilt) == {"x1"} and isinstance(prebuilt["x1"], CachedEncoder)
    train = tensors["train"].inputs
    assert set(train["x1"]) == {"pooled", "tokens", "mask"} and set(train["x2"]) == {"values"}
    raw = data.tensors({"x1": ScaledPreprocessor(data.schema.modalities["x1"], tmp_path / "checkpoint-a", 1.0)})[1]
    expected = FrozenProjection(infos["x1"])(raw["train"].inputs["x1"])
    rows_seen = FrozenProjection.rows_seen
    assert torch.equal(train["x1"]["pooled"], expected.pooled) and torch.equal(train["x1"]["tokens"], expected.tokens)
    assert sorted(prebuilt["x1"].state_dict()) == ["weight"]  # the real encoder's keys: saved models reload uncached

    # the second trial of the process reads memory; a new process (new cache object) reads the file
    cache.trial_inputs(_config(seed=1), data, {"x1": ScaledPreprocessor(infos["x1"], tmp_path / "checkpoint-a", 1.0),
                                               "x2": EmbeddingPreprocessor(data.schema.modalities["x2"])}, frozen)
    later = FeatureCache(root=tmp_path / "cache")
    _, (_, again, _) = _trial_inputs(later, frozen, task)
    assert (cache.hits, later.hits, later.misses) == (1, 1, 0)
    assert FrozenProjection.rows_seen == rows_seen  # neither ran the encoder
    assert torch.equal(again["test"].inputs["x1"]["tokens"], tensors["test"].inputs["x1"]["tokens"])
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 1


def test_a_fusion_that_reads_only_pooled_vectors_gets_them_computed_once_from_the_shared_entry(frozen, tiny_task, tmp_path):
    from mmbench.train.model import build_model

    task = tiny_task(n_samples=120)
    cache = FeatureCache(root=tmp_path / "cache")
    _, (_, tokens, token_prebuilt) = _trial_inputs(cache, frozen, task, fusion="film")
    data, (infos, pooled, prebuilt) = _trial_inputs(cache, frozen, task, fusion="early")
    assert frozen.get_fusion("early").reads_tokens is False and frozen.get_fusion("film").reads_tokens is True
    assert (cache.misses, cache.hits) == (1, 1)  # one entry: both trials read the same feature pass
    for split in ("train", "validation", "test"):
        assert set(pooled[split].inputs["x1"]) == {"pooled"}
        expected = token_prebuilt["x1"](tokens[split].inputs["x1"]).pooled
        assert torch.equal(prebuilt["x1"](pooled[split].inputs["x1"]).pooled, expected)
    model = build_model(_config(fusion="early"), infos, data.schema.n_classes, frozen, prebuilt=prebuilt)
    assert model.encoders["x1"].pooled_only
    batch = {m: {k: v[:8] for k, v in inputs.items()} for m, inputs in pooled["test"].inputs.items()}
    logits, _ = model(batch)
    assert logits.shape == (8, data.schema.n_classes)


class LengthRecorder(Encoder):
    """Pooled = sum of the unpadded ids; records the longest row of every batch it sees."""

    name = "text.lengthrecorder"
    modality = "text"
    space = {}

    def __init__(self, info) -> None:
        super().__init__(info)
        self.out_dim = 1
        self.longest: list[int] = []

    def forward(self, batch):
        ids, mask = batch["ids"], batch["mask"]
        self.longest.append(int(mask.sum(dim=1).max()))
        return Encoded(pooled=(ids * mask).sum(dim=1, keepdim=True).float())


def test_features_are_computed_shortest_first_and_returned_in_row_order():
    from mmbench.data.schema import ModalityInfo

    lengths = torch.tensor([5, 1, 4, 2, 3, 1])
    mask = torch.arange(5) < lengths[:, None]
    ids = torch.arange(1, 31).reshape(6, 5)
    encoder = LengthRecorder(ModalityInfo(name="text", kind="text", columns=("t",)))
    features = compute_features(encoder, {"train": {"ids": ids, "mask": mask}}, device="cpu", batch_size=2)
    assert encoder.longest == [1, 3, 5]  # batches of similar lengths: (1, 1), (2, 3), (4, 5)
    assert torch.equal(features["train"]["pooled"][:, 0].float(), (ids * mask).sum(dim=1).float())


def test_a_deadline_stops_the_feature_pass_between_batches():
    from mmbench.data.schema import ModalityInfo
    from mmbench.train.features.compute import FeaturePassStopped

    ids, mask = torch.arange(1, 31).reshape(6, 5), torch.ones(6, 5, dtype=torch.bool)
    encoder = LengthRecorder(ModalityInfo(name="text", kind="text", columns=("t",)))
    checks = iter([False, False, True])  # the deadline passes before the third batch
    with pytest.raises(FeaturePassStopped, match="4 of 6 rows done"):
        compute_features(encoder, {"train": {"ids": ids, "mask": mask}}, device="cpu", batch_size=2, deadline=lambda: next(checks))
    assert len(encoder.longest) == 2


class SlowRecorder(LengthRecorder):
    """LengthRecorder at a quarter of a second a batch: a pass whose pace is known."""

    name = "text.slowrecorder"

    def forward(self, batch):
        import time

        time.sleep(0.25)
        return super().forward(batch)


def test_a_feature_pass_that_cannot_end_before_the_deadline_stops_early_and_one_that_can_runs_on():
    import time

    from mmbench.data.schema import ModalityInfo
    from mmbench.train.features.compute import FeaturePassStopped

    ids, mask = torch.arange(1, 101).reshape(20, 5), torch.ones(20, 5, dtype=torch.bool)  # 10 batches, ~2.5 s
    encoder = SlowRecorder(ModalityInfo(name="text", kind="text", columns=("t",)))
    deadline = time.monotonic() + 2.2
    with pytest.raises(FeaturePassStopped, match="would end about") as stopped:
        compute_features(encoder, {"train": {"ids": ids, "mask": mask}}, device="cpu", batch_size=2, deadline=deadline)
    assert 3 <= len(encoder.longest) <= 6  # stopped on its pace, before the deadline itself would
    assert stopped.value.projected_end > deadline
    encoder.longest.clear()
    features = compute_features(encoder, {"train": {"ids": ids, "mask": mask}}, device="cpu", batch_size=2,
                                deadline=time.monotonic() + 60)
    assert len(encoder.longest) == 10 and features["train"]["pooled"].shape == (20, 1)


def test_the_pace_of_a_pass_counts_padded_tokens_so_short_rows_first_do_not_promise_long_rows_at_their_speed():
    from mmbench.train.features.compute import batch_work, length_order

    lengths = torch.tensor([40, 2, 2, 40, 2, 2])
    tensors = {"ids": torch.ones(6, 40, dtype=torch.long), "mask": torch.arange(40) < lengths[:, None]}
    assert batch_work(tensors, length_order(tensors), 2) == [4.0, 4.0, 80.0]  # the last batch is 10x the first two together
    assert batch_work({"values": torch.ones(5, 3)}, torch.arange(5), 2) == [2.0, 2.0, 1.0]  # no mask: rows


def test_a_pass_stopped_for_want_of_time_is_not_started_again_before_a_deadline_it_cannot_meet(frozen, tiny_task, tmp_path,
                                                                                               monkeypatch):
    import time

    import mmbench.train.features.store as store
    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.features.compute import FeaturePassStopped
    from mmbench.train.model import preprocessors_for

    calls = []

    def too_slow(*args, **kwargs):
        calls.append(1)
        raise FeaturePassStopped("would end about 100 s from now", projected_end=time.monotonic() + 100)

    monkeypatch.setattr(store, "compute_features", too_slow)
    data = load_task_data(resolve_task(str(tiny_task(n_samples=120)), frozen), frozen)
    config = _config(fusion="early")
    cache = FeatureCache(root=tmp_path / "cache")
    args = (config, data, preprocessors_for(config, data.schema, frozen), frozen)
    with pytest.raises(FeaturePassStopped):
        cache.trial_inputs(*args, deadline=time.monotonic() + 50)
    with pytest.raises(FeaturePassStopped, match="needs about 100 s"):
        cache.trial_inputs(*args, deadline=time.monotonic() + 50)
    assert len(calls) == 1  # the second trial did not start the pass
    with pytest.raises(FeaturePassStopped):
        cache.trial_inputs(*args, deadline=time.monotonic() + 500)  # time enough: the pass is tried again
    assert len(calls) == 2


def test_a_trial_whose_feature_pass_meets_the_deadline_is_pruned_and_caches_nothing(frozen, tiny_task, search_settings,
                                                                                     tmp_path, stores, monkeypatch):
    import optuna

    from mmbench.search.budget import STOPPED_TAG
    from mmbench.search.objective import Objective

    monkeypatch.setattr(Objective, "deadline", 0.0)  # a --time-limit already spent when the trial starts
    settings = search_settings(tiny_task(n_samples=120), n_trials=1, fusions=["early"], cache_dir=tmp_path / "cache",
                               encoders={"x1": ["embedding.frozenproj"], "x2": ["embedding.mlp"]})
    run_search(settings, registry=frozen)
    trial = optuna.load_study(study_name="tiny", storage=stores["storage"]).trials[0]
    assert trial.state.name == "PRUNED" and trial.user_attrs[STOPPED_TAG] == "time_limit"
    assert FrozenProjection.rows_seen == 0 and not list((tmp_path / "cache").glob("*.safetensors"))


def test_features_past_the_memory_budget_are_spilled_and_cached_on_disk(frozen, tiny_task, tmp_path, monkeypatch):
    from mmbench.tasks.loading import load_task_data
    from mmbench.data.storage.spill import SPILL_VARIABLE, is_spilled
    from mmbench.train.model import preprocessors_for
    from mmbench.tasks.files import resolve_task

    monkeypatch.setenv(SPILL_VARIABLE, str(tmp_path / "spill"))
    task = tiny_task(n_samples=120)
    _, (_, in_memory, _) = _trial_inputs(FeatureCache(root=tmp_path / "memory-cache"), frozen, task)
    data = load_task_data(resolve_task(str(task), frozen), frozen)
    data.memory_budget = 0
    config = _config()
    cache = FeatureCache(root=tmp_path / "cache")
    _, tensors, _ = cache.trial_inputs(config, data, preprocessors_for(config, data.schema, frozen), frozen)
    for split in ("train", "validation", "test"):
        for field_name in ("pooled", "tokens", "mask"):
            spilled = tensors[split].inputs["x1"][field_name]
            assert is_spilled(spilled) and torch.equal(spilled, in_memory[split].inputs["x1"][field_name])
    later = FeatureCache(root=tmp_path / "cache")  # the streamed write is a regular entry for the next search
    _, (_, again, _) = _trial_inputs(later, frozen, task)
    assert later.hits == 1 and torch.equal(again["test"].inputs["x1"]["tokens"], in_memory["test"].inputs["x1"]["tokens"])


def test_the_streaming_writer_writes_standard_safetensors(tmp_path):
    from safetensors import safe_open

    tensors = {
        "flag": torch.tensor([True, False, True]), "half": torch.randn(3, 5).to(torch.bfloat16),
        "ids": torch.arange(7), "wide": torch.randn(4, 2, 3).transpose(0, 1), "empty": torch.zeros(0, 4),
    }
    write_safetensors(tmp_path / "x.safetensors", tensors, metadata={"key": "value"})
    with safe_open(str(tmp_path / "x.safetensors"), framework="pt") as handle:
        assert handle.metadata() == {"key": "value"}
        for name, tensor in tensors.items():
            assert torch.equal(handle.get_tensor(name), tensor), name


@pytest.mark.parametrize("change", ["checkpoint", "checkpoint overwritten", "preprocessing", "data"])
def test_a_changed_key_input_misses(frozen, tiny_task, tmp_path, monkeypatch, change):
    task = tiny_task(n_samples=120)
    _trial_inputs(FeatureCache(root=tmp_path / "cache"), frozen, task)
    if change == "checkpoint":
        monkeypatch.setenv(CHECKPOINT_VARIABLE, str(write_checkpoint(tmp_path / "checkpoint-b", seed=2)))
    elif change == "checkpoint overwritten":  # same folder, new weights: the file listing changes
        weights = tmp_path / "checkpoint-a" / "weights.npy"
        write_checkpoint(tmp_path / "checkpoint-a", seed=2)
        os.utime(weights, ns=(weights.stat().st_atime_ns, weights.stat().st_mtime_ns + 10**9))
    elif change == "preprocessing":
        monkeypatch.setenv(SCALE_VARIABLE, "2")
    else:
        task = tiny_task(name="tiny-more", n_samples=124)
    cache = FeatureCache(root=tmp_path / "cache")
    _, (_, tensors, _) = _trial_inputs(cache, frozen, task)
    assert (cache.hits, cache.misses) == (0, 1)
    assert len(list((tmp_path / "cache").glob("*.safetensors"))) == 2


def test_trials_differing_only_in_a_post_cache_hyperparameter_share_one_entry(frozen, tiny_task, tmp_path):
    from mmbench.tasks.loading import load_task_data
    from mmbench.train.model import build_model, preprocessors_for
    from mmbench.tasks.files import resolve_task

    data = load_task_data(resolve_task(str(tiny_task(n_samples=120)), frozen), frozen)
    cache = FeatureCache(root=tmp_path / "cache")
    pooled = {}
    for sign in (1, -1):
        config = TrialConfig(fusion="early", fusion_params={}, encoders={"x1": "embedding.signedproj", "x2": "embedding.mlp"},
                             encoder_params={"x1": {"sign": sign}, "x2": {}}, train={}, seed=0)
        infos, tensors, prebuilt = cache.trial_inputs(config, data, preprocessors_for(config, data.schema, frozen), frozen)
        model = build_model(config, infos, data.schema.n_classes, frozen, prebuilt=prebuilt)
        pooled[sign] = model.encoders["x1"](tensors["train"].inputs["x1"]).pooled
        uncached = SignedProjection(infos["x1"], sign=sign)(data.tensors(preprocessors_for(config, data.schema, frozen))[1]["train"].inputs["x1"])
        assert torch.equal(pooled[sign], uncached.pooled)
    assert (cache.misses, cache.hits) == (1, 1)  # one feature pass for both signs
    assert torch.equal(pooled[-1], -pooled[1])


def test_least_recently_used_entries_are_evicted(frozen, tiny_task, tmp_path, monkeypatch):
    task = tiny_task(n_samples=120)
    _trial_inputs(FeatureCache(root=tmp_path / "cache"), frozen, task)
    (first,) = (tmp_path / "cache").glob("*.safetensors")
    size = first.stat().st_size
    monkeypatch.setenv(SCALE_VARIABLE, "3")
    _trial_inputs(FeatureCache(root=tmp_path / "cache", max_bytes=int(size * 1.5)), frozen, task)
    (kept,) = (tmp_path / "cache").glob("*.safetensors")
    assert kept != first


def test_size_zero_turns_the_cache_off_and_a_negative_size_is_an_error(tmp_path):
    from mmbench.errors import ConfigError

    assert FeatureCache.from_options(tmp_path, 0) is None
    assert FeatureCache.from_options(tmp_path, 1.5).max_bytes == 1_500_000_000
    with pytest.raises(ConfigError, match="--cache-size-gb"):
        FeatureCache.from_options(tmp_path, -1)


def test_cached_and_uncached_searches_give_the_same_metrics(frozen, tiny_task, search_settings, tmp_path, stores):
    import optuna
    from safetensors.torch import load_file

    from mmbench.tasks.loading import load_task_data
    from mmbench.train.model import build_model, preprocessors_for
    from mmbench.tasks.files import resolve_task
    from mmbench.tracking.tracker import Tracker
    from mmbench.train.loop import evaluate

    task = tiny_task(n_samples=160)
    common = dict(n_trials=2, sampler="random", pruner="none", fusions=["early"],
                  encoders={"x1": ["embedding.frozenproj"], "x2": ["embedding.mlp"]}, cache_dir=tmp_path / "cache")
    cached = run_search(search_settings(task, study="cached", **common), registry=frozen)
    assert FrozenProjection.rows_seen == 160  # features computed once: the second trial hit the cache
    uncached = run_search(search_settings(task, study="uncached", cache_size_gb=0, **common), registry=frozen)
    assert FrozenProjection.rows_seen > 160  # the encoder ran in every batch

    def values(name):
        study = optuna.load_study(study_name=name, storage=stores["storage"])
        return [t.values for t in study.trials]

    assert values("cached") == values("uncached")
    client = Tracker(stores["tracking_uri"]).client
    metrics = [client.get_run(o.best_run_id).data.metrics for o in (cached, uncached)]
    for name in ("val_accuracy", "test_accuracy", "test_loss"):
        assert metrics[0][name] == pytest.approx(metrics[1][name], abs=1e-6)
    assert metrics[0]["peak_rss_mb"] > 0

    # the cached search's saved model is the full model: it reloads without the cache
    folder = client.download_artifacts(cached.best_run_id, "", str(tmp_path / "best"))
    config = TrialConfig.from_dict(cached.best_config)
    data = load_task_data(resolve_task(str(task), frozen), frozen)
    infos, tensors = data.tensors(preprocessors_for(config, data.schema, frozen))
    model = build_model(config, infos, data.schema.n_classes, frozen)
    model.load_state_dict(load_file(f"{folder}/model/weights.safetensors"))
    accuracy = evaluate(model, tensors["test"], n_classes=data.schema.n_classes)["accuracy"]
    assert accuracy == pytest.approx(metrics[0]["test_accuracy"], abs=1e-6)
