"""Several trials of the same model structure trained as one batched model (``--batch-trials``).

On cached features a trial is a small head: one trial at a time spends its time in Python and
kernel launches, not arithmetic. Here the members' parameters are stacked along a new first
dimension (:class:`StackedAdamW`) and one ``torch.vmap(functional_call)`` forward and backward
serves the whole group (the HFTA idea, Wang et al., MLSys 2021), followed by one AdamW step over the
stacked leaves. Each row keeps its own parameters, optimiser state, learning rate, weight decay,
gradient clipping and batch order (its seed), so a member follows the same path as alone (up to
floating-point reordering; dropout masks differ).
Validation (every epoch) and the test score are one batched forward for the whole group, scored
member by member with :func:`~mmbench.train.loop.logits_metrics` (what :func:`~mmbench.train.loop.evaluate`
reports); best weights are copies of what training changes, not of the shared frozen backbone. A
member that is pruned, stops early or fails leaves the stack while the others go on. Running out
of memory halves the group and retries (:func:`fit_group`).
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
from mmbench.train.loop import (EpochReport, FitResult, TrainSettings, _balanced_weights, past_deadline, _to_device, batches, fit,
                                logits_metrics, resolve_device, task_loss)
from mmbench.train.metrics import metric_sign, tune_threshold
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
    setting ``repr`` shows, e.g. dropout), same parameter shapes, same hyperparameters of each cached
    encoder (those its cache entry leaves out, e.g. a pooling redone on every output: ``repr`` does not
    show them, and the batch runs the first member's modules), same training settings but for
    :data:`PER_MEMBER_SETTINGS`."""
    shapes = tuple((name, tuple(p.shape), p.requires_grad) for name, p in member.model.named_parameters())
    encoders = tuple((name, repr(sorted(e.params.items()))) for name, e in sorted(member.model.encoders.items())
                     if isinstance(e, CachedEncoder))
    settings = tuple(sorted((k, v) for k, v in vars(member.settings).items() if k not in PER_MEMBER_SETTINGS))
    return repr(member.model), shapes, encoders, settings


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
    initial = [trainable_state(m.model) for m in group]
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
            restore_state(member.model, state)
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
    exception its callback, a NaN loss or a deadline raised. Out-of-memory errors propagate.

    Validation each epoch and the final test score are one batched forward for all members still
    training (every member on the same rows, so each batch of rows is gathered once), scored
    member by member as :func:`~mmbench.train.loop.evaluate` would.
    """
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
    generators = [torch.Generator(device="cpu").manual_seed(m.settings.seed) for m in members]
    weights = _balanced_weights(splits["train"].labels, n_classes) if common.class_weight == "balanced" else None
    loss_fn = task_loss(base, common.loss, class_weight=None if weights is None else weights.to(device))
    use_amp = common.amp and device.type == "cuda"
    autocast = (lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)) if use_amp else contextlib.nullcontext

    def member_logits(params: dict[str, torch.Tensor], inputs: dict) -> torch.Tensor:
        logits, _ = torch.func.functional_call(base, {**params, **shared}, (inputs,))
        return logits

    batched_loss = torch.vmap(lambda params, inputs, target: loss_fn(member_logits(params, inputs), target), randomness="different")
    same_rows_logits = torch.vmap(member_logits, in_dims=(0, None))

    @torch.no_grad()
    def predict(params: dict[str, torch.Tensor], split: SplitTensors) -> torch.Tensor:
        """``(members, rows, outputs)`` logits in eval mode, as :func:`~mmbench.train.loop.predict_logits` per member."""
        base.eval()  # functional_call runs base's modules: its mode is every member's
        chunks = []
        for inputs, _ in batches(split, common.batch_size * 4, device):
            with autocast():
                chunks.append(same_rows_logits(params, inputs).float())
        return torch.cat(chunks, dim=1)

    tracks = [_Track() for _ in members]
    results: list[FitResult | Exception | None] = [None] * len(members)
    active = list(range(len(members)))
    stack = StackedAdamW([own[i] for i in active], names, lr=[m.settings.lr for m in members],
                         weight_decay=[m.settings.weight_decay for m in members])
    train = splits["train"]
    stopped: str | None = None
    for epoch in range(1, common.max_epochs + 1):
        epoch_started = time.perf_counter()
        base.train()
        orders = torch.stack([torch.randperm(len(train), generator=generators[i]) for i in active]).to(train.labels.device)
        total = torch.zeros(len(active), device=device)
        seen = 0
        for start in range(0, len(train), common.batch_size):
            inputs, target = train.select(orders[:, start : start + common.batch_size])  # (K, B, ...)
            with autocast():
                losses = batched_loss(stack.params, inputs, target)
            losses.sum().backward()  # members are independent: each row of a stacked leaf gets its own member's gradient
            stack.step(grad_clip=common.grad_clip)
            total.add_(losses.detach(), alpha=target.shape[1])
            seen += target.shape[1]
            if past_deadline(common.deadline):
                stopped = "time_limit"
                break
        if stopped and tracks[active[0]].history:
            break
        stack.write_back([own[i] for i in active])  # each member's model holds its weights: tracks copy its best
        train_losses = (total / max(1, seen)).tolist()
        validation = predict(stack.params, splits["validation"])
        still = []
        for row, (i, train_loss) in enumerate(zip(active, train_losses)):
            try:
                if tracks[i].epoch(members[i], epoch, train_loss, validation[row], splits["validation"].labels, n_classes,
                                   epoch_started):
                    still.append(row)
            except Exception as error:  # noqa: BLE001 - pruned or failed: this member leaves the stack
                results[i] = error
        if len(still) < len(active):
            stack.keep(still)
        active = [active[row] for row in still]
        check_stop(f"after epoch {epoch}")
        if not active or stopped:
            break
        if past_deadline(common.deadline):
            stopped = "time_limit"
            break
    finished = [i for i in range(len(members)) if results[i] is None]
    for i in finished:
        tracks[i].restore(members[i].model)
    if finished:
        best = {n: torch.stack([own[i][n].detach() for i in finished]) for n in names}
        multi_label = splits["validation"].labels.dim() == 2  # its decision threshold is tuned on validation
        validation = predict(best, splits["validation"]) if multi_label else None
        test = predict(best, splits["test"])
        for row, i in enumerate(finished):
            results[i] = tracks[i].result(members[i], None if validation is None else validation[row], test[row], splits,
                                          n_classes, started, device, stopped)
    return results  # type: ignore[return-value]


class StackedAdamW:
    """The trainable parameters of several members stacked along a new first dimension, as leaves of
    their own, with AdamW over them: one row per member, each with its own learning rate and weight
    decay, the arithmetic of :class:`torch.optim.AdamW` (defaults: betas 0.9 and 0.999, eps 1e-8) and
    of :func:`torch.nn.utils.clip_grad_norm_` per row. One set of tensor operations per parameter
    serves the whole group, where one optimiser per member cost K optimiser steps each batch.
    """

    def __init__(self, members: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str], *, lr: Sequence[float],
                 weight_decay: Sequence[float], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.params = {n: torch.stack([m[n].detach() for m in members]).requires_grad_() for n in names}
        device = next(iter(self.params.values())).device
        self._lr = torch.tensor(lr, dtype=torch.float64, device=device)
        self._decay = torch.tensor(weight_decay, dtype=torch.float64, device=device)
        self._exp_avg = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._exp_avg_sq = {n: torch.zeros_like(p) for n, p in self.params.items()}
        self._betas, self._eps, self._steps = betas, eps, 0
        self._shape_rows()

    def _shape_rows(self) -> None:
        """Per parameter, each row's learning rate and decay factor ``1 - lr * weight_decay``, shaped to broadcast."""
        self._lr_rows = {n: _per_row(self._lr, p) for n, p in self.params.items()}
        self._decay_rows = {n: _per_row(1 - self._lr * self._decay, p) for n, p in self.params.items()}

    @torch.no_grad()
    def step(self, *, grad_clip: float = 0.0) -> None:
        """One AdamW step of every row from the gradients ``backward`` left; the gradients are then cleared.

        The arithmetic is AdamW's, in the order of its ``foreach`` implementation, with one
        ``torch._foreach_*`` call per operation for all parameters (few kernel launches on a GPU)."""
        names = [n for n, p in self.params.items() if p.grad is not None]  # an unused parameter: skipped, as AdamW does
        if not names:
            return
        params = [self.params[n] for n in names]
        grads = [p.grad for p in params]
        if grad_clip > 0:
            norms = torch.stack([torch.linalg.vector_norm(g.flatten(1), dim=1) for g in grads], dim=1)
            coefficient = (grad_clip / (torch.linalg.vector_norm(norms, dim=1) + 1e-6)).clamp(max=1.0)
            torch._foreach_mul_(grads, [_per_row(coefficient, g) for g in grads])
        self._steps += 1
        beta1, beta2 = self._betas
        exp_avgs, exp_avg_sqs = [self._exp_avg[n] for n in names], [self._exp_avg_sq[n] for n in names]
        torch._foreach_mul_(params, [self._decay_rows[n] for n in names])
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, math.sqrt(1 - beta2 ** self._steps))
        torch._foreach_add_(denominators, self._eps)
        steps = torch._foreach_mul(exp_avgs, [self._lr_rows[n] for n in names])
        torch._foreach_addcdiv_(params, steps, denominators, -1 / (1 - beta1 ** self._steps))
        for p in params:
            p.grad = None

    def keep(self, rows: Sequence[int]) -> None:
        """Only these rows (members) go on: the others leave the stack with their optimiser state."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self._lr.device)
        self.params = {n: p.detach().index_select(0, index).requires_grad_() for n, p in self.params.items()}
        self._exp_avg = {n: v.index_select(0, index) for n, v in self._exp_avg.items()}
        self._exp_avg_sq = {n: v.index_select(0, index) for n, v in self._exp_avg_sq.items()}
        self._lr, self._decay = self._lr[index], self._decay[index]
        self._shape_rows()

    @torch.no_grad()
    def write_back(self, members: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Copy each row into its member's own parameters (row order: the members still in the stack)."""
        for row, member in enumerate(members):
            for n, p in self.params.items():
                member[n].copy_(p[row])


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per row of a stacked tensor, in its dtype, shaped ``(rows, 1, ...)`` to broadcast over it."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state a member's training can change: everything but its frozen parameters
    (the cached encoder's backbone, shared by every member and never trained)."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def restore_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a :func:`trainable_state` copy back (the frozen parameters it leaves out never changed)."""
    model.load_state_dict(state, strict=not any(not p.requires_grad for p in model.parameters()))


@dataclass
class _Track:
    """One member's early-stopping state: its best epoch and weights, as in :func:`~mmbench.train.loop.fit`."""

    best_score: float = -math.inf
    best_epoch: int = 0
    best_state: dict[str, torch.Tensor] | None = None
    stale: int = 0
    history: list[EpochReport] = field(default_factory=list)

    def epoch(self, member: Member, epoch: int, train_loss: float, logits: torch.Tensor, labels: torch.Tensor,
              n_classes: int, epoch_started: float) -> bool:
        """Score one epoch's validation logits and call the member's callback; False once patience runs out."""
        settings = member.settings
        if not math.isfinite(train_loss):
            raise TrialError(f"training loss became {train_loss} at epoch {epoch}; lower train.lr or check the data")
        validation = logits_metrics(member.model, logits, labels, n_classes=n_classes)
        report = EpochReport(epoch, train_loss, validation, time.perf_counter() - epoch_started)
        self.history.append(report)
        score = metric_sign(settings.metric) * validation[settings.metric]
        if score > self.best_score:
            self.best_score, self.best_epoch, self.stale = score, epoch, 0
            self.best_state = trainable_state(member.model)
        else:
            self.stale += 1
        if member.on_epoch is not None:
            member.on_epoch(report)
        return self.stale < settings.patience

    def restore(self, model: nn.Module) -> None:
        """Back to the weights of the best epoch."""
        if self.best_state is not None:
            restore_state(model, self.best_state)

    def result(self, member: Member, validation_logits: torch.Tensor | None, test_logits: torch.Tensor,
               splits: Mapping[str, SplitTensors], n_classes: int, started: float, device: torch.device,
               stopped: str | None) -> FitResult:
        """The member's :class:`FitResult` from its best-epoch logits (validation ones: multi-label only)."""
        settings = member.settings
        validation, threshold = self.history[self.best_epoch - 1].validation, 0.5
        if validation_logits is not None:
            labels = splits["validation"].labels
            threshold = tune_threshold(validation_logits, labels, settings.metric)
            validation = {**logits_metrics(member.model, validation_logits, labels, n_classes=n_classes, threshold=threshold),
                          "threshold": threshold}
        test = logits_metrics(member.model, test_logits, splits["test"].labels, n_classes=n_classes, threshold=threshold)
        return FitResult(best_epoch=self.best_epoch, validation=validation, test=test, history=self.history,
                         n_parameters=count_parameters(member.model), seconds=time.perf_counter() - started,
                         device=str(device), stopped=stopped)
