"""Several trials of the same model structure trained as one batched model (``--batch-trials``).

On cached features a trial is a small head: one trial at a time spends its time in Python and
kernel launches, not arithmetic. Here the members' parameters are stacked every step and one
``torch.vmap(functional_call)`` forward and backward serves the whole group (the HFTA idea,
Wang et al., MLSys 2021). Each member keeps its own parameters, its own AdamW (so its own learning
rate and weight decay), its own batch order (its seed) and its own gradient clipping, so a member
follows the same path as alone (bitwise up to floating-point reordering; dropout masks differ).
Validation, best-epoch selection and the test score reuse :func:`~mmbench.train.loop.evaluate`
member by member; a member that is pruned, stops early or fails leaves the stack while the
others go on. Running out of memory halves the group and retries (:func:`fit_group`).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from mmbench.data.prepared import SplitTensors
from mmbench.errors import TrialError
from mmbench.infra.signals import check_stop
from mmbench.train.features.encoder import CachedEncoder
from mmbench.train.guards import check_model_outputs, is_out_of_memory
from mmbench.train.loop import (EpochReport, FitResult, TrainSettings, _past, _to_device, evaluate, fit, resolve_device,
                                task_loss)
from mmbench.train.metrics import metric_sign
from mmbench.train.model import MultimodalModel, count_parameters

#: settings that may differ between members of one batch (everything else must be equal)
PER_MEMBER_SETTINGS: frozenset[str] = frozenset({"lr", "weight_decay", "seed"})


@dataclass
class Member:
    """One trial of a group: its model, settings and per-epoch callback (which may raise to stop it)."""

    model: MultimodalModel
    settings: TrainSettings
    on_epoch: Callable[[EpochReport], None] | None = None


@dataclass
class MemberOutcome:
    """What became of one member: its :class:`FitResult` or the exception that ended it.

    Attributes:
        batched_with: indexes (in the group given to :func:`fit_group`) of the members it was
            trained with, itself included; one index means it ran alone.
        oom_splits: how many times its group was halved because memory ran out.
    """

    result: FitResult | None = None
    error: BaseException | None = None
    batched_with: list[int] = field(default_factory=list)
    oom_splits: int = 0


def can_batch(model: MultimodalModel) -> bool:
    """A fusion that declares ``batchable``, encoders that only read cached features, no auxiliary loss."""
    encoders_cached = all(isinstance(e, CachedEncoder) and not any(p.requires_grad for p in e.parameters())
                          for e in model.encoders.values())
    return bool(getattr(model.fusion, "batchable", False)) and encoders_cached and model.auxiliary is None


def batch_key(member: Member) -> tuple:
    """Members with equal keys can share one batched model: same modules (shapes and every non-tensor
    setting ``repr`` shows, e.g. dropout), same parameter shapes, same training settings but for
    :data:`PER_MEMBER_SETTINGS`."""
    shapes = tuple((name, tuple(p.shape), p.requires_grad) for name, p in member.model.named_parameters())
    settings = tuple(sorted((k, v) for k, v in vars(member.settings).items() if k not in PER_MEMBER_SETTINGS))
    return repr(member.model), shapes, settings


def fit_group(members: Sequence[Member], data: Mapping[str, SplitTensors], *, n_classes: int) -> list[MemberOutcome]:
    """Train every member, batching those with equal :func:`batch_key` that :func:`can_batch`.

    Members that cannot be batched are trained one at a time with :func:`~mmbench.train.loop.fit`.
    When a batched group runs out of memory, its members' initial weights are restored and each
    half is trained on its own (recursively; a single member then fails as :func:`fit` does).
    """
    outcomes = [MemberOutcome() for _ in members]
    groups: dict[tuple, list[int]] = {}
    streamed = any(split.streamed for split in data.values())  # spilled rows cannot be gathered (K, B) at once
    for index, member in enumerate(members):
        key = batch_key(member) if can_batch(member.model) and not streamed else ("alone", index)
        groups.setdefault(key, []).append(index)
    for indexes in groups.values():
        _fit_indexes(members, indexes, data, n_classes, outcomes, splits=0)
    return outcomes


def _fit_indexes(members: Sequence[Member], indexes: list[int], data: Mapping[str, SplitTensors], n_classes: int,
                 outcomes: list[MemberOutcome], *, splits: int) -> None:
    if len(indexes) == 1:
        member, outcome = members[indexes[0]], outcomes[indexes[0]]
        outcome.batched_with, outcome.oom_splits = list(indexes), splits
        try:
            outcome.result = fit(member.model, data, member.settings, n_classes=n_classes, on_epoch=member.on_epoch)
        except Exception as error:  # noqa: BLE001 - the member's own failure, handed back to its trial
            outcome.error = error
        return
    group = [members[i] for i in indexes]
    initial = [{k: v.detach().clone() for k, v in m.model.state_dict().items()} for m in group]
    try:
        results = fit_batched(group, data, n_classes=n_classes)
    except RuntimeError as error:
        if not is_out_of_memory(error):
            raise
        results = None
    if results is None:  # outside the except block, so the activations the traceback holds are freed
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        for member, state in zip(group, initial):
            member.model.load_state_dict(state)
        half = len(indexes) // 2
        for part in (indexes[:half], indexes[half:]):
            _fit_indexes(members, part, data, n_classes, outcomes, splits=splits + 1)
        return
    for index, result in zip(indexes, results):
        outcome = outcomes[index]
        outcome.batched_with, outcome.oom_splits = list(indexes), splits
        if isinstance(result, BaseException):
            outcome.error = result
        else:
            outcome.result = result


def fit_batched(members: Sequence[Member], data: Mapping[str, SplitTensors], *,
                n_classes: int) -> list[FitResult | Exception]:
    """Train members of one structure (equal :func:`batch_key`) together; per member a result or the
    exception its callback, a NaN loss or a deadline raised. Out-of-memory errors propagate."""
    started = time.perf_counter()
    common = members[0].settings
    device = resolve_device(common.device)
    splits = {name: _to_device(split, device) for name, split in data.items()}
    base = members[0].model
    for member in members:
        member.model.to(device)
    check_model_outputs(base, splits["train"], n_classes)
    names = [name for name, p in base.named_parameters() if p.requires_grad]
    own = [dict(m.model.named_parameters()) for m in members]
    shared = {**{k: v for k, v in base.named_parameters() if not v.requires_grad}, **dict(base.named_buffers())}
    optimizers = [torch.optim.AdamW([own[i][n] for n in names], lr=m.settings.lr, weight_decay=m.settings.weight_decay)
                  for i, m in enumerate(members)]
    generators = [torch.Generator(device="cpu").manual_seed(m.settings.seed) for m in members]
    loss_fn = task_loss(base, common.loss)
    use_amp = common.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext

    def member_loss(params: dict[str, torch.Tensor], inputs: dict, target: torch.Tensor) -> torch.Tensor:
        logits, _ = torch.func.functional_call(base, {**params, **shared}, (inputs,))
        return loss_fn(logits, target)

    batched_loss = torch.vmap(member_loss, randomness="different")
    tracks = [_Track() for _ in members]
    results: list[FitResult | Exception | None] = [None] * len(members)
    active = list(range(len(members)))
    train = splits["train"]
    stopped: str | None = None
    for epoch in range(1, common.max_epochs + 1):
        epoch_started = time.perf_counter()
        for i in active:
            members[i].model.train()
        orders = torch.stack([torch.randperm(len(train), generator=generators[i]) for i in active]).to(train.labels.device)
        total = torch.zeros(len(active), device=device)
        seen = 0
        for start in range(0, len(train), common.batch_size):
            inputs, target = train.select(orders[:, start : start + common.batch_size])  # (K, B, ...)
            stacked = {n: torch.stack([own[i][n] for i in active]) for n in names}
            with autocast():
                losses = batched_loss(stacked, inputs, target)
            for i in active:
                optimizers[i].zero_grad(set_to_none=True)
            losses.sum().backward()  # members are independent: each leaf gets its own member's gradient
            for i in active:
                if common.grad_clip > 0:
                    nn.utils.clip_grad_norm_([own[i][n] for n in names], common.grad_clip)
                optimizers[i].step()
            total.add_(losses.detach(), alpha=target.shape[1])
            seen += target.shape[1]
            if _past(common.deadline):
                stopped = "time_limit"
                break
        if stopped and tracks[active[0]].history:
            break
        train_losses = (total / max(1, seen)).tolist()
        still = []
        for i, train_loss in zip(active, train_losses):
            try:
                if tracks[i].epoch(members[i], epoch, train_loss, splits, n_classes, epoch_started):
                    still.append(i)
            except Exception as error:  # noqa: BLE001 - pruned or failed: this member leaves the stack
                results[i] = error
        active = still
        check_stop(f"after epoch {epoch}")
        if not active or stopped:
            break
        if _past(common.deadline):
            stopped = "time_limit"
            break
    for i, member in enumerate(members):
        if results[i] is None:
            results[i] = tracks[i].result(member, splits, n_classes, started, device, stopped)
    return results  # type: ignore[return-value]


@dataclass
class _Track:
    """One member's early-stopping state: its best epoch and weights, as in :func:`~mmbench.train.loop.fit`."""

    best_score: float = -math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    history: list[EpochReport] = field(default_factory=list)

    def epoch(self, member: Member, epoch: int, train_loss: float, splits: Mapping[str, SplitTensors],
              n_classes: int, epoch_started: float) -> bool:
        """Validate one epoch and call the member's callback; False once patience runs out."""
        settings = member.settings
        if not math.isfinite(train_loss):
            raise TrialError(f"training loss became {train_loss} at epoch {epoch}; lower train.lr or check the data")
        use_amp = settings.amp and splits["validation"].labels.device.type == "cuda"
        validation = evaluate(member.model, splits["validation"], n_classes=n_classes,
                              batch_size=settings.batch_size * 4, use_amp=use_amp)
        report = EpochReport(epoch, train_loss, validation, time.perf_counter() - epoch_started)
        self.history.append(report)
        score = metric_sign(settings.metric) * validation[settings.metric]
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = {k: v.detach().clone() for k, v in member.model.state_dict().items()}
        else:
            self.stale += 1
        if member.on_epoch is not None:
            member.on_epoch(report)
        return self.stale < settings.patience

    def result(self, member: Member, splits: Mapping[str, SplitTensors], n_classes: int, started: float,
               device: torch.device, stopped: str | None) -> FitResult:
        if self.best_state is not None:
            member.model.load_state_dict(self.best_state)
        settings = member.settings
        test = evaluate(member.model, splits["test"], n_classes=n_classes, batch_size=settings.batch_size * 4,
                        use_amp=settings.amp and device.type == "cuda")
        return FitResult(best_epoch=self.best_epoch, validation=self.history[self.best_epoch - 1].validation, test=test,
                         history=self.history, n_parameters=count_parameters(member.model),
                         seconds=time.perf_counter() - started, device=str(device), stopped=stopped)
