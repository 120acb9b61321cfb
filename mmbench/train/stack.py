"""One stack of batched members (:mod:`mmbench.train.batched`): the members and their state, their
stacked forward, backward and AdamW step, one pass (epoch) at a time, and each member's early-stopping track."""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from mmbench.data.prepared import SplitTensors
from mmbench.errors import TrialError
from mmbench.infra.signals import check_stop
from mmbench.train.guards import check_model_outputs
from mmbench.train.loop import (EpochReport, FitResult, TrainSettings, _balanced_weights, _to_device, batches, logits_metrics, past_deadline,
                                predict_logits, resolve_device, task_loss)
from mmbench.train.metrics import metric_sign, tune_threshold
from mmbench.train.model import MultimodalModel, count_parameters
from mmbench.train.stacked_adamw import StackedAdamW


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
        batched_with: the ids (given to :meth:`BatchedTrainer.admit`) of the members it shared at
            least one pass with, itself included, in order; one id means it ran alone.
        oom_splits: how many times the stack size of its structure was halved while it waited or
            trained because memory ran out.
    """

    result: FitResult | None = None
    error: BaseException | None = None
    batched_with: list[int] = field(default_factory=list)
    oom_splits: int = 0


@dataclass
class Running:
    """A member inside the trainer: its data, early-stopping track, batch-order generator and first weights."""

    ident: int
    member: Member
    data: Mapping[str, SplitTensors]
    n_classes: int
    initial: dict[str, torch.Tensor]
    started: float = field(default_factory=time.perf_counter)
    track: Track = field(default_factory=lambda: Track())
    generator: torch.Generator = field(init=False)  # its batch order, from its seed
    batched_with: set[int] = field(default_factory=set)
    oom_splits: int = 0

    def __post_init__(self) -> None:
        self.generator = torch.Generator(device="cpu").manual_seed(self.member.settings.seed)

    def restart(self) -> None:
        """Back to the first weights, as if it had just arrived (its stack ran out of memory)."""
        restore_state(self.member.model, self.initial)
        self.track, self.started, self.batched_with = Track(), time.perf_counter(), set()
        self.generator = torch.Generator(device="cpu").manual_seed(self.member.settings.seed)

    def outcome(self, result: FitResult | None = None, error: BaseException | None = None) -> MemberOutcome:
        return MemberOutcome(result, error, sorted(self.batched_with | {self.ident}), self.oom_splits)


class Stack:
    """The members of one structure training together: the first one's modules run everyone's stacked parameters."""

    def __init__(self, first: Running) -> None:
        common = first.member.settings
        self.common, self.n_classes = common, first.n_classes
        self.device = resolve_device(common.device)
        self.splits = {name: _to_device(split, self.device) for name, split in first.data.items()}
        base = self.base = first.member.model
        base.to(self.device)
        check_model_outputs(base, self.splits["train"], first.n_classes)
        self.names = [name for name, p in base.named_parameters() if p.requires_grad]
        weights = _balanced_weights(self.splits["train"].labels, first.n_classes) if common.class_weight == "balanced" else None
        loss_fn = task_loss(base, common.loss, class_weight=None if weights is None else weights.to(self.device))
        self.use_amp = common.amp and self.device.type == "cuda"
        self.autocast = (lambda: torch.autocast(device_type=self.device.type, dtype=torch.bfloat16)) if self.use_amp \
            else contextlib.nullcontext

        def member_logits(params: dict[str, torch.Tensor], inputs: dict) -> torch.Tensor:
            # only the stacked leaves are swapped in: the module's own frozen tensors (a cached encoder's whole
            # backbone, unused on cached features) stay, instead of being re-set on the module every step
            logits, _ = torch.func.functional_call(base, params, (inputs,))
            return logits

        self.batched_loss = torch.vmap(lambda params, inputs, target: loss_fn(member_logits(params, inputs), target),
                                       randomness="different")
        self.same_rows_logits = torch.vmap(member_logits, in_dims=(0, None))
        self.running: list[Running] = []
        self.own: list[dict[str, torch.Tensor]] = []
        self.optimizer: StackedAdamW | None = None

    def add(self, joining: list[Running]) -> None:
        for running in joining:
            running.member.model.to(self.device)
        own = [dict(r.member.model.named_parameters()) for r in joining]
        lr, decay = [r.member.settings.lr for r in joining], [r.member.settings.weight_decay for r in joining]
        if self.optimizer is None:
            self.optimizer = StackedAdamW(own, self.names, lr=lr, weight_decay=decay)
        else:
            self.optimizer.add(own, lr=lr, weight_decay=decay)
        self.running += joining
        self.own += own

    @torch.no_grad()
    def predict(self, split: SplitTensors) -> torch.Tensor:
        """``(members, rows, outputs)`` logits in eval mode, as :func:`~mmbench.train.loop.predict_logits` per member."""
        self.base.eval()  # functional_call runs base's modules: its mode is every member's
        chunks = []
        for inputs, _ in batches(split, self.common.batch_size * 4, self.device):
            with self.autocast():
                chunks.append(self.same_rows_logits(self.optimizer.params, inputs).float())
        return torch.cat(chunks, dim=1)

    def run_pass(self) -> list[tuple[Running, MemberOutcome]]:
        """One epoch of every member; returns the members that leave (done, pruned, failed or out of time)."""
        common, stack = self.common, self.optimizer
        assert stack is not None
        members = {r.ident for r in self.running}
        for running in self.running:
            running.batched_with |= members
        epoch_started = time.perf_counter()
        self.base.train()
        train = self.splits["train"]
        orders = torch.stack([torch.randperm(len(train), generator=r.generator) for r in self.running]).to(train.labels.device)
        total = torch.zeros(len(self.running), device=self.device)
        seen, stopped = 0, None
        for start in range(0, len(train), common.batch_size):
            inputs, target = train.select(orders[:, start : start + common.batch_size])  # (K, B, ...)
            with self.autocast():
                losses = self.batched_loss(stack.params, inputs, target)
            losses.sum().backward()  # members are independent: each row of a stacked leaf gets its own member's gradient
            stack.step(grad_clip=common.grad_clip)
            total.add_(losses.detach(), alpha=target.shape[1])
            seen += target.shape[1]
            if past_deadline(common.deadline):
                stopped = "time_limit"
                break
        stack.write_back(self.own)  # each member's model holds its weights: tracks copy its best
        train_losses = (total / max(1, seen)).tolist()
        validation = self.predict(self.splits["validation"])
        labels = self.splits["validation"].labels
        rows, leaving = [], []  # rows: the stack rows of the members that go on
        for row, (running, train_loss) in enumerate(zip(self.running, train_losses)):
            track = running.track
            if stopped and track.history:  # an epoch cut short is validated only when it is the first
                leaving.append((running, None))
                continue
            try:
                patient = track.epoch(running.member, len(track.history) + 1, train_loss, validation[row], labels, self.n_classes,
                                      epoch_started)
            except Exception as error:  # noqa: BLE001 - pruned or failed: this member leaves the stack
                leaving.append((running, error))
                continue
            if patient and len(track.history) < common.max_epochs:
                rows.append(row)
            else:
                leaving.append((running, None))
        check_stop("after a pass of the batched trials")
        if stopped is None and past_deadline(common.deadline):
            stopped = "time_limit"
        if stopped:
            leaving += [(self.running[row], None) for row in rows]
            rows = []
        if len(rows) < len(self.running):
            stack.keep(rows)
            self.own = [self.own[row] for row in rows]
            self.running = [self.running[row] for row in rows]
        return [(r, r.outcome(error=error) if error is not None else self._finish(r, stopped)) for r, error in leaving]

    def _finish(self, running: Running, stopped: str | None) -> MemberOutcome:
        """Best weights back, test scored (validation again only to tune a multi-label threshold)."""
        model, track = running.member.model, running.track
        track.restore(model)
        validation = self.splits["validation"]
        multi_label = validation.labels.dim() == 2
        val_logits = predict_logits(model, validation, use_amp=self.use_amp) if multi_label else None
        test = predict_logits(model, self.splits["test"], batch_size=self.common.batch_size * 4, use_amp=self.use_amp)
        return running.outcome(track.result(running.member, val_logits, test, self.splits, self.n_classes, running.started,
                                            self.device, stopped))


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy of the state a member's training can change: everything but its frozen parameters
    (the cached encoder's backbone, shared by every member and never trained)."""
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    return {k: v.detach().clone() for k, v in model.state_dict().items() if k not in frozen}


def restore_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a :func:`trainable_state` copy back (the frozen parameters it leaves out never changed)."""
    model.load_state_dict(state, strict=not any(not p.requires_grad for p in model.parameters()))


@dataclass
class Track:
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
