"""The training and evaluation loop: the one place that knows devices, AMP and metrics.

Data for a trial is already a set of tensors (:class:`~mmbench.data.prepared.SplitTensors`),
moved to the device once (kept there while the search holds them); batches are index selections, so no per-batch Python
collation runs (rows spilled to disk are read a few batches ahead in a background thread).
Validation drives early stopping and pruning; the test split is scored once, with the best
validation weights, and never drives a decision.
"""

from __future__ import annotations

import contextlib
import math
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mmbench.data.storage.prefetch import read_ahead
from mmbench.data.prepared import SplitTensors
from mmbench.errors import ConfigError, TrialError
from mmbench.train.guards import check_model_outputs, is_out_of_memory
from mmbench.train.metrics import metric_sign, task_metrics, tune_threshold
from mmbench.train.model import MultimodalModel, count_parameters
from mmbench.infra.signals import check_stop


@dataclass(frozen=True)
class TrainSettings:
    """How to train one trial.

    Attributes:
        metric: the validation metric that selects the best epoch (its direction: :func:`~mmbench.train.metrics.metric_direction`).
        lr: AdamW learning rate.
        weight_decay: AdamW weight decay.
        batch_size: examples per step.
        max_epochs: upper bound on epochs.
        patience: epochs without validation improvement before stopping.
        grad_clip: maximum gradient norm (0 disables clipping).
        seed: batch-order seed.
        device: ``"auto"``, ``"cpu"``, ``"cuda"`` or ``"cuda:N"``.
        amp: bf16 autocast on CUDA.
        compile: run the training steps through ``torch.compile`` (``--compile``; pays off for
            larger models on a GPU, costs a compilation per trial).
        loss: a regression task's loss, ``mse`` or ``huber`` (``train.loss``, searched).
        class_weight: ``balanced`` weighs each class's cross-entropy by ``n_rows / (n_classes * its rows)``
            on train (``train.class_weight``; searched on imbalanced classification tasks), else ``none``.
        deadline: a ``time.monotonic()`` value (``--time-limit``, :mod:`mmbench.search.budget`), or a callable
            that returns True once time is up: training stops at the first batch past it and keeps the best epoch so far (an epoch cut short is validated only
            when it is the first).
    """

    metric: str = "accuracy"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 64
    max_epochs: int = 10
    patience: int = 3
    grad_clip: float = 1.0
    seed: int = 0
    device: str = "auto"
    amp: bool = True
    compile: bool = False
    loss: str = "mse"
    class_weight: str = "none"
    deadline: float | Callable[[], bool] | None = None

    @classmethod
    def from_config(cls, train: Mapping[str, Any], *, metric: str, seed: int, device: str) -> TrainSettings:
        """Settings from a trial configuration's ``train`` block (unknown keys are ignored by design:
        auxiliary-objective settings live there too)."""
        names = {"lr", "weight_decay", "batch_size", "max_epochs", "patience", "grad_clip", "amp", "loss", "class_weight"}
        return cls(metric=metric, seed=seed, device=device, **{k: v for k, v in train.items() if k in names})


@dataclass
class EpochReport:
    """What one epoch produced; passed to the ``on_epoch`` callback."""

    epoch: int
    train_loss: float
    validation: dict[str, float]
    seconds: float

    @property
    def metrics(self) -> dict[str, float]:
        """Flat ``train_loss``, ``val_<name>`` and ``epoch_seconds`` for tracking."""
        flat = {"train_loss": self.train_loss, "epoch_seconds": self.seconds}
        flat.update({f"val_{k}": v for k, v in self.validation.items()})
        return flat


@dataclass
class FitResult:
    """The outcome of a fit: best-epoch validation and test metrics and the history."""

    best_epoch: int
    validation: dict[str, float]
    test: dict[str, float]
    history: list[EpochReport] = field(default_factory=list)
    n_parameters: int = 0
    seconds: float = 0.0
    device: str = "cpu"
    stopped: str | None = None  # "time_limit" when the deadline ended training early


def resolve_device(requested: str = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else the CPU; an unavailable CUDA request is an error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"--device {requested}: CUDA is not available on this machine; use --device cpu or auto")
    try:
        return torch.device(requested)
    except RuntimeError:
        raise ConfigError(f"--device {requested!r}: expected auto, cpu, cuda or cuda:N") from None


def fit(
    model: MultimodalModel,
    data: Mapping[str, SplitTensors],
    settings: TrainSettings,
    *,
    n_classes: int,
    on_epoch: Callable[[EpochReport], None] | None = None,
    extra_loss: Callable[[dict[str, Any]], torch.Tensor] | None = None,
) -> FitResult:
    """Train on ``data["train"]``, select on ``data["validation"]``, score ``data["test"]`` once.

    Args:
        model: the assembled model.
        data: split -> tensors.
        settings: optimisation settings.
        n_classes: number of classes.
        on_epoch: called after each epoch (tracking, pruning: it may raise to stop the trial).
        extra_loss: auxiliary loss from the per-modality encodings, added to the classification loss
            (on top of the model's own ``auxiliary`` objective, when it has one).

    Running out of memory (CUDA or host) becomes a :class:`TrialError` naming the batch size, so
    the trial is recorded FAILED with that reason and the search goes on with the next configuration.

    Raises:
        TrialError: the loss became NaN or infinite, or memory ran out.
    """
    try:
        return _fit(model, data, settings, n_classes=n_classes, on_epoch=on_epoch, extra_loss=extra_loss)
    except RuntimeError as error:  # torch.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(error):
            raise
        reason = (f"out of memory ({' '.join(str(error).split())[:200]}) with train.batch_size={settings.batch_size}; "
                  "lower it (--set train.batch_size=N) or choose smaller encoders")
    # outside the except block, so the traceback's frames (holding activations) are already freed
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    raise TrialError(reason)


def _fit(
    model: MultimodalModel,
    data: Mapping[str, SplitTensors],
    settings: TrainSettings,
    *,
    n_classes: int,
    on_epoch: Callable[[EpochReport], None] | None = None,
    extra_loss: Callable[[dict[str, Any]], torch.Tensor] | None = None,
) -> FitResult:
    """:func:`fit` without the out-of-memory translation."""
    started = time.perf_counter()
    device = resolve_device(settings.device)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    model.to(device)
    splits = {name: _to_device(split, device) for name, split in data.items()}
    check_model_outputs(model, splits["train"], n_classes)  # a broken plugin fails here, by name
    trainable = [p for p in model.parameters() if p.requires_grad]  # frozen backbones: skipped by clip and copies
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    forward = torch.compile(model) if settings.compile else model
    optimizer = torch.optim.AdamW(trainable, lr=settings.lr, weight_decay=settings.weight_decay)
    weights = _balanced_weights(splits["train"].labels, n_classes) if settings.class_weight == "balanced" else None
    loss_fn = task_loss(model, settings.loss, class_weight=None if weights is None else weights.to(device))
    generator = torch.Generator(device="cpu").manual_seed(settings.seed)
    torch.manual_seed(settings.seed)  # dropout draws too: one seed, one result (on CPU)
    extra_losses = [f for f in (getattr(model, "auxiliary", None), extra_loss) if f is not None]
    use_amp = settings.amp and device.type == "cuda"
    # no autocast context at all without AMP: entering a disabled one costs microseconds every step
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext
    best_score, best_epoch, best_state, stale = -math.inf, 0, None, 0
    history: list[EpochReport] = []
    stopped: str | None = None
    for epoch in range(1, settings.max_epochs + 1):
        epoch_started = time.perf_counter()
        model.train()
        train = splits["train"]
        order = torch.randperm(len(train), generator=generator).to(train.labels.device)
        total = torch.zeros((), device=device)
        seen = 0
        for inputs, target in batches(train, settings.batch_size, device, order=order):
            with autocast():
                logits, encoded = forward(inputs)
                loss = loss_fn(logits, target)
                for extra in extra_losses:
                    loss = loss + extra(encoded)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if settings.grad_clip > 0:
                nn.utils.clip_grad_norm_(trainable, settings.grad_clip)
            optimizer.step()
            total.add_(loss.detach(), alpha=target.shape[0])  # one op, no host sync per step
            seen += target.shape[0]
            if past_deadline(settings.deadline):
                stopped = "time_limit"
                break
        if stopped and history:  # the epochs before were complete: keep the best of them
            break
        train_loss = (total / max(1, seen)).item()
        if not math.isfinite(train_loss):
            raise TrialError(f"training loss became {train_loss} at epoch {epoch}; lower train.lr or check the data")
        validation = evaluate(model, splits["validation"], n_classes=n_classes, batch_size=settings.batch_size * 4, use_amp=use_amp)
        report = EpochReport(epoch, train_loss, validation, time.perf_counter() - epoch_started)
        history.append(report)
        score = metric_sign(settings.metric) * validation[settings.metric]
        if score > best_score:
            best_score, best_epoch, stale = score, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}
        else:
            stale += 1
        if on_epoch is not None:
            on_epoch(report)
        check_stop(f"after epoch {epoch}")  # SIGINT/SIGTERM: this epoch is reported, stop here
        if stopped or stale >= settings.patience:
            break
        if past_deadline(settings.deadline):
            stopped = "time_limit"
            break
    if best_state is not None:
        model.load_state_dict(best_state, strict=not frozen)  # frozen weights never changed
    validation, threshold = history[best_epoch - 1].validation, 0.5
    if splits["validation"].labels.dim() == 2:  # multi-label: the decision threshold is tuned on validation only
        threshold = tune_threshold(predict_logits(model, splits["validation"], use_amp=use_amp), splits["validation"].labels, settings.metric)
        validation = {**evaluate(model, splits["validation"], n_classes=n_classes, use_amp=use_amp, threshold=threshold), "threshold": threshold}
    test = evaluate(model, splits["test"], n_classes=n_classes, batch_size=settings.batch_size * 4, use_amp=use_amp, threshold=threshold)
    return FitResult(
        best_epoch=best_epoch,
        validation=validation,
        test=test,
        history=history,
        n_parameters=count_parameters(model),
        seconds=time.perf_counter() - started,
        device=str(device),
        stopped=stopped,
    )


def past_deadline(deadline: float | Callable[[], bool] | None) -> bool:
    """Whether ``deadline`` (a ``time.monotonic()`` value, or a callable saying so) has passed; never for ``None``."""
    if deadline is None:
        return False
    return deadline() if callable(deadline) else time.monotonic() >= deadline


@torch.no_grad()
def predict_logits(model: MultimodalModel, split: SplitTensors, *, batch_size: int = 256, use_amp: bool = False) -> torch.Tensor:
    """Logits for every row of a split (model in eval mode), in row order."""
    model.eval()
    device = next(model.parameters()).device
    chunks = []
    for inputs, _ in batches(split, batch_size, device):
        with torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=use_amp):
            logits, _ = model(inputs)
        chunks.append(logits.float())
    return torch.cat(chunks)


def evaluate(model: MultimodalModel, split: SplitTensors, *, n_classes: int, batch_size: int = 256, use_amp: bool = False,
             threshold: float = 0.5) -> dict[str, float]:
    """Loss and the task's metrics (:func:`~mmbench.train.metrics.task_metrics`; ``threshold``: a
    multi-label task's decision threshold) of a split."""
    logits = predict_logits(model, split, batch_size=batch_size, use_amp=use_amp)
    return logits_metrics(model, logits, split.labels, n_classes=n_classes, threshold=threshold)


def logits_metrics(model: MultimodalModel, logits: torch.Tensor, labels: torch.Tensor, *, n_classes: int,
                   threshold: float = 0.5) -> dict[str, float]:
    """What :func:`evaluate` reports, from logits already computed (a batched group's, :mod:`mmbench.train.batched`)."""
    target = labels.to(logits.device)
    metrics = task_metrics(logits, target, n_classes, threshold=threshold)
    metrics["loss"] = task_loss(model, "mse")(logits, target).item()
    return metrics


def _balanced_weights(labels: torch.Tensor, n_classes: int) -> torch.Tensor | None:
    """``n_rows / (n_classes * rows of the class)`` per class (scikit-learn's ``balanced``); ``None`` off single-label classes."""
    if labels.is_floating_point() or labels.dim() != 1:
        return None
    counts = torch.bincount(labels, minlength=n_classes).float().clamp_min(1)
    return len(labels) / (n_classes * counts)


#: ``train.loss`` choices of a regression task (classification always uses cross-entropy)
REGRESSION_LOSSES: tuple[str, ...] = ("mse", "huber")


def task_loss(model: MultimodalModel, name: str = "mse", *,
              class_weight: torch.Tensor | None = None) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
    """Cross-entropy for classes, per-label binary cross-entropy for a multi-hot target; for a
    regression model (one with a ``target_scale``), MSE or Huber on the standardised target, so the
    loss's scale and Huber's threshold do not depend on the units."""
    scale = getattr(model, "target_scale", None)
    if scale is None:
        return lambda outputs, target: (nn.functional.binary_cross_entropy_with_logits(outputs.float(), target) if target.dim() == 2
                                        else nn.functional.cross_entropy(outputs.float(), target, weight=class_weight))
    if name not in REGRESSION_LOSSES:
        raise ConfigError(f"train.loss '{name}' is unknown; available for regression: {', '.join(REGRESSION_LOSSES)}")
    error = nn.functional.huber_loss if name == "huber" else nn.functional.mse_loss
    return lambda outputs, target: error(outputs.float().reshape(-1) / scale[1], target.float().reshape(-1) / scale[1])


#: Share of the free GPU memory a trial's data may take when it is placed on the GPU whole.
GPU_DATA_SHARE = 0.5


def batches(split: SplitTensors, batch_size: int, device: torch.device, *,
            order: torch.Tensor | None = None) -> Iterator[tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor]]:
    """``(inputs, target)`` batches of ``split`` on ``device``, in ``order`` (default: row order).

    In-memory rows are index selections with no other per-batch work. Rows spilled to disk
    (:mod:`mmbench.data.storage.spill`) are gathered a few batches ahead in a background thread (pinned
    for an asynchronous copy to a GPU), so disk reads overlap the training step.
    """
    streamed = bool(split.streamed)
    pin = streamed and device.type == "cuda"

    def gather() -> Iterator[tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor]]:
        for start in range(0, len(split), batch_size):
            if order is None:
                index = torch.arange(start, min(start + batch_size, len(split)), device=split.labels.device)
            else:
                index = order[start : start + batch_size]
            inputs, target = split.select(index)
            if pin:
                inputs = {m: {k: v.pin_memory() for k, v in t.items()} for m, t in inputs.items()}
                target = target.pin_memory()
            yield inputs, target

    for inputs, target in read_ahead(gather()) if streamed else gather():
        yield _batch_to(inputs, target, device)


def _to_device(split: SplitTensors, device: torch.device) -> SplitTensors:
    """The split on the accelerator when it fits, so batches are index selections there; else in
    pinned host memory, from which each batch is copied asynchronously (see :func:`_batch_to`);
    spilled rows stay on disk and are pinned batch by batch (:func:`batches`). A tensor copied to a
    GPU stays there while its host tensor lives (:func:`_resident`): the trials of a search share
    their data (the feature cache's features above all), so it crosses the bus once per search."""
    if device.type == "cpu":
        return split
    tensors = [v for t in split.inputs.values() for v in t.values()] + [split.labels]
    missing = sum(v.numel() * v.element_size() for v in tensors if (id(v), str(device)) not in _ON_DEVICE)
    if device.type == "cuda" and missing > GPU_DATA_SHARE * torch.cuda.mem_get_info(device)[0]:
        if split.streamed:
            return split
        inputs = {m: {k: v.pin_memory() for k, v in t.items()} for m, t in split.inputs.items()}
        return SplitTensors(inputs, split.labels.pin_memory())
    inputs = {m: {k: _resident(v, device) for k, v in t.items()} for m, t in split.inputs.items()}
    return SplitTensors(inputs, _resident(split.labels, device))


#: device copies of host tensors, by ``(id(host tensor), device)``; an entry leaves when its host tensor is freed
_ON_DEVICE: dict[tuple[int, str], torch.Tensor] = {}


def _resident(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``tensor`` on ``device``, copied on first use and kept there for as long as ``tensor`` lives."""
    if tensor.device.type != "cpu":
        return tensor
    key = (id(tensor), str(device))
    copy = _ON_DEVICE.get(key)
    if copy is None:
        copy = _ON_DEVICE[key] = tensor.to(device, non_blocking=True)
        weakref.finalize(tensor, _ON_DEVICE.pop, key, None)
    return copy


def _batch_to(inputs: dict[str, dict[str, torch.Tensor]], target: torch.Tensor,
              device: torch.device) -> tuple[dict[str, dict[str, torch.Tensor]], torch.Tensor]:
    """A batch on ``device``: a no-op for data already there, an asynchronous copy from pinned memory otherwise."""
    if target.device == device or (device.type == "cuda" and target.device.type == "cuda"):
        return inputs, target
    moved = {m: {k: v.to(device, non_blocking=True) for k, v in t.items()} for m, t in inputs.items()}
    return moved, target.to(device, non_blocking=True)
