"""Several trials of the same model structure trained as one batched model (``--batch-trials``).

On cached features a trial is a small head: one trial at a time spends its time in Python and
kernel launches, not arithmetic. Here the members' parameters are stacked along a new first
dimension (:class:`~mmbench.train.stacked_adamw.StackedAdamW`) and one ``torch.vmap(functional_call)``
forward and backward serves the whole stack (the HFTA idea, Wang et al., MLSys 2021), followed by
one AdamW step over the stacked leaves. Each row keeps its own parameters, optimiser state, learning
rate, weight decay, gradient clipping and batch order (its seed), so a member follows the same path
as alone (up to floating-point reordering; dropout masks differ).

Membership rolls (continuous batching): a :class:`BatchedTrainer` runs one pass (an epoch of every
member in a stack) at a time; a member that is pruned, stops early, reaches its last epoch or fails
leaves between passes, and members that arrived meanwhile join, so a stack stays full instead of
waiting for its slowest member. Validation after each pass is one batched forward for the stack,
scored member by member with :func:`~mmbench.train.loop.logits_metrics` (what
:func:`~mmbench.train.loop.evaluate` reports); a leaving member's test score is its own forward, as
in :func:`~mmbench.train.loop.fit`. Running out of memory restarts the stack's members from their
first weights with half the stack size (:attr:`MemberOutcome.oom_splits`); at size one a member
trains alone with :func:`~mmbench.train.loop.fit`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import torch

from mmbench.data.prepared import SplitTensors
from mmbench.train.features.encoder import CachedEncoder
from mmbench.train.guards import is_out_of_memory
from mmbench.train.loop import fit
from mmbench.train.model import MultimodalModel
from mmbench.train.stack import Member, MemberOutcome, Running, Stack, trainable_state

#: settings that may differ between members of one batch (everything else must be equal)
PER_MEMBER_SETTINGS: frozenset[str] = frozenset({"lr", "weight_decay", "seed"})


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


def data_key(data: Mapping[str, SplitTensors]) -> tuple:
    """Same storage and shapes: the members train on the very same tensors (the feature cache's)."""
    return tuple((split, modality, key, value.data_ptr(), tuple(value.shape))
                 for split, tensors in sorted(data.items())
                 for modality, fields in sorted(tensors.inputs.items())
                 for key, value in sorted(fields.items()))


def fit_group(members: Sequence[Member], data: Mapping[str, SplitTensors], *, n_classes: int) -> list[MemberOutcome]:
    """Train every member, batching those with equal :func:`batch_key` that :func:`can_batch`, until all are done."""
    trainer = BatchedTrainer()
    for index, member in enumerate(members):
        trainer.admit(index, member, data, n_classes)
    outcomes: dict[int, MemberOutcome] = {}
    while trainer.busy:
        outcomes.update(trainer.run_pass())
    return [outcomes[i] for i in range(len(members))]


class BatchedTrainer:
    """Members arrive (:meth:`admit`) and train in stacks of one structure, one pass at a time (:meth:`run_pass`).

    Members that cannot be batched, and every member once memory allowed a stack of only one, are
    trained alone with :func:`~mmbench.train.loop.fit` inside :meth:`run_pass`.
    """

    def __init__(self) -> None:
        self._waiting: dict[tuple, list[Running]] = {}
        self._stacks: dict[tuple, Stack] = {}
        self._capacity: dict[tuple, int] = {}

    @property
    def busy(self) -> bool:
        """Whether a member is waiting or training."""
        return any(self._waiting.values()) or any(stack.running for stack in self._stacks.values())

    @property
    def training(self) -> int:
        """How many members are inside stacks now."""
        return sum(len(stack.running) for stack in self._stacks.values())

    def admit(self, ident: int, member: Member, data: Mapping[str, SplitTensors], n_classes: int) -> None:
        """Queue a member; it joins a stack of its structure (and data) at the next pass."""
        streamed = any(split.streamed for split in data.values())  # spilled rows cannot be gathered (K, B) at once
        key = (batch_key(member), data_key(data)) if can_batch(member.model) and not streamed else ("alone", ident)
        if key[0] == "alone":
            self._capacity[key] = 1
        self._waiting.setdefault(key, []).append(Running(ident, member, data, n_classes, trainable_state(member.model)))

    def run_pass(self) -> list[tuple[int, MemberOutcome]]:
        """Fill the stacks from the waiting members, run one pass of each, and return the members that are done."""
        done: list[tuple[int, MemberOutcome]] = []
        for key in list(self._waiting):
            waiting = self._waiting[key]
            if self._capacity.get(key) == 1:  # alone: the plain loop, one member per pass
                running = waiting.pop(0)
                done.append((running.ident, _fit_alone(running)))
            else:
                self._fill(key, done)
            if not waiting:
                del self._waiting[key]
        for key, stack in list(self._stacks.items()):
            if not stack.running:
                continue
            try:
                done.extend((r.ident, outcome) for r, outcome in stack.run_pass())
                continue
            except Exception as error:  # noqa: BLE001 - a broken plugin under vmap: its stack's members fail with it
                if not is_out_of_memory(error):
                    done.extend(self._drop(key, error))
                    continue
            self._halve(key)  # outside the except block, so the activations the traceback holds are freed
        return done

    def _fill(self, key: tuple, done: list[tuple[int, MemberOutcome]]) -> None:
        waiting, stack = self._waiting[key], self._stacks.get(key)
        room = self._capacity.get(key, math.inf) - (len(stack.running) if stack else 0)
        joining = [waiting.pop(0) for _ in range(int(min(room, len(waiting))))]
        if not joining:
            return
        if stack is None or not stack.running:
            try:
                stack = self._stacks[key] = Stack(joining[0])
            except Exception as error:  # noqa: BLE001 - the structure fails its output check: every member of it does
                done.extend((r.ident, r.outcome(error=error)) for r in joining)
                return
        stack.add(joining)

    def _halve(self, key: tuple) -> None:
        """Memory ran out in a stack: its members start again from their first weights, half as many at a time."""
        stack = self._stacks.pop(key)
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        for running in stack.running:
            running.restart()
        self._waiting[key] = stack.running + self._waiting.get(key, [])
        self._capacity[key] = max(1, len(stack.running) // 2)
        for running in self._waiting[key]:
            running.oom_splits += 1

    def _drop(self, key: tuple, error: BaseException) -> list[tuple[int, MemberOutcome]]:
        stack = self._stacks.pop(key)
        return [(r.ident, r.outcome(error=error)) for r in stack.running]

    def abandon(self) -> list[int]:
        """Forget every member (a stop signal ended training); returns their ids."""
        idents = [r.ident for group in self._waiting.values() for r in group]
        idents += [r.ident for stack in self._stacks.values() for r in stack.running]
        self._waiting.clear()
        self._stacks.clear()
        return idents


def _fit_alone(running: Running) -> MemberOutcome:
    member = running.member
    try:
        result = fit(member.model, running.data, member.settings, n_classes=running.n_classes, on_epoch=member.on_epoch)
    except Exception as error:  # noqa: BLE001 - the member's own failure, handed back to its trial
        return running.outcome(error=error)
    return running.outcome(result)
