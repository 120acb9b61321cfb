"""The training loop: seeded determinism, failed trials on NaN/Inf loss, early stopping, metrics, devices."""

from __future__ import annotations

import pytest
import torch

from mmbench.search.trials import TrialConfig
from mmbench.data.prepared import SplitTensors
from mmbench.data.schema import ModalityInfo
from mmbench.errors import ConfigError, TrialError
from mmbench.train.model import build_model
from mmbench.train.loop import EpochReport, TrainSettings, fit, resolve_device

INFOS = {m: ModalityInfo(name=m, kind="embedding", columns=(m,), dim=6) for m in ("x1", "x2")}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _data(n_classes: int = 2, seed: int = 0) -> dict[str, SplitTensors]:
    """Learnable data: the label is the argmax of a fixed projection of the first modality."""
    g = torch.Generator().manual_seed(seed)
    weights = torch.randn(6, n_classes, generator=g)

    def split(n: int) -> SplitTensors:
        inputs = {m: {"values": torch.randn(n, 6, generator=g)} for m in INFOS}
        return SplitTensors(inputs, (inputs["x1"]["values"] @ weights).argmax(dim=1))

    return {"train": split(96), "validation": split(48), "test": split(48)}


def _model(registry, *, fusion: str = "early", n_classes: int = 2, seed: int = 0, train: dict | None = None):
    encoder = {"hidden": 8, "n_layers": 1, "dropout": 0.3}  # dropout: determinism must cover its draws
    params = {"early": {"hidden": 16, "n_layers": 1, "dropout": 0.3}}.get(fusion, {})
    config = TrialConfig(fusion, params, {m: "embedding.mlp" for m in INFOS}, {m: dict(encoder) for m in INFOS}, train or {}, seed=seed)
    return build_model(config, INFOS, n_classes, registry)


def test_one_seed_gives_identical_metrics_on_cpu(registry):
    settings = TrainSettings(max_epochs=3, patience=3, batch_size=16, device="cpu", seed=5)
    runs = []
    for _ in range(2):
        model = _model(registry, seed=5)
        torch.manual_seed(123 + len(runs))  # whatever the global RNG state, the seed decides (dropout too)
        result = fit(model, _data(), settings, n_classes=2)
        runs.append(([(r.train_loss, r.validation) for r in result.history], result.test))
    assert runs[0] == runs[1]
    other = fit(_model(registry, seed=6), _data(), TrainSettings(max_epochs=3, patience=3, batch_size=16, device="cpu", seed=6), n_classes=2)
    assert [r.train_loss for r in other.history] != [loss for loss, _ in runs[0][0]]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_a_non_finite_loss_fails_the_trial_with_the_reason(registry, bad):
    reports: list[EpochReport] = []
    with pytest.raises(TrialError, match=rf"training loss became {bad} at epoch 1; lower train\.lr"):
        fit(_model(registry), _data(), TrainSettings(max_epochs=3, device="cpu"), n_classes=2,
            on_epoch=reports.append, extra_loss=lambda encoded: torch.tensor(bad))
    assert reports == []  # nothing was reported for the broken epoch


def test_early_stopping_restores_the_best_epoch_and_reports_each_epoch(registry):
    reports: list[EpochReport] = []
    settings = TrainSettings(lr=0.0, max_epochs=10, patience=2, batch_size=32, device="cpu")  # nothing can improve
    result = fit(_model(registry), _data(), settings, n_classes=2, on_epoch=reports.append)
    assert [r.epoch for r in reports] == [1, 2, 3] and result.best_epoch == 1
    assert set(reports[0].metrics) >= {"train_loss", "epoch_seconds", "val_accuracy", "val_macro_f1", "val_auroc", "val_loss"}


@pytest.mark.parametrize("n_classes", [2, 3])
def test_metrics_for_binary_and_multiclass_tasks(registry, n_classes):
    result = fit(_model(registry, n_classes=n_classes), _data(n_classes), TrainSettings(lr=1e-2, max_epochs=8, patience=8, batch_size=16, device="cpu"),
                 n_classes=n_classes)
    for split in (result.validation, result.test):
        assert set(split) >= {"accuracy", "macro_f1", "auroc", "loss"}
        assert all(0.0 <= split[k] <= 1.0 for k in ("accuracy", "macro_f1", "auroc"))
    assert result.validation["accuracy"] > 1.0 / n_classes + 0.15  # it learned something
    assert result.device == "cpu" and result.n_parameters > 0


def test_gradient_clipping_bounds_the_gradient_norm_of_every_step(registry, monkeypatch):
    original = torch.nn.utils.clip_grad_norm_
    clipped_norms: list[tuple[float, float]] = []

    def spy(parameters, max_norm, *args, **kwargs):
        parameters = [p for p in parameters if p.grad is not None]
        before = original(parameters, max_norm, *args, **kwargs)  # returns the norm before clipping
        after = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in parameters])).item()
        clipped_norms.append((before.item(), after))
        return before

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", spy)
    huge = lambda encoded: 1e3 * sum(e.pooled.square().mean() for e in encoded.values())
    fit(_model(registry), _data(), TrainSettings(max_epochs=1, batch_size=16, device="cpu", grad_clip=0.5), n_classes=2, extra_loss=huge)
    assert len(clipped_norms) == 6  # one per step
    assert all(after <= 0.5 + 1e-4 for _, after in clipped_norms) and max(before for before, _ in clipped_norms) > 0.5


def test_device_resolution():
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(ConfigError, match="--device 'tpu'"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda")


def test_a_split_copied_to_an_accelerator_stays_there_while_its_host_tensors_live():
    """The trials of a search share their data: the second trial finds the first one's device copies,
    and a freed host tensor takes its copy with it (no device memory kept for data gone)."""
    import gc

    from mmbench.train.loop import _ON_DEVICE, _to_device

    device = torch.device("meta")  # a non-CPU device every machine has: the same path as a GPU's
    split = _data()["train"]
    first, second = _to_device(split, device), _to_device(split, device)
    assert first.inputs["x1"]["values"].device.type == "meta"
    assert second.inputs["x1"]["values"] is first.inputs["x1"]["values"] and second.labels is first.labels
    key = (id(split.labels), str(device))
    assert key in _ON_DEVICE
    del split, first, second
    gc.collect()
    assert key not in _ON_DEVICE
