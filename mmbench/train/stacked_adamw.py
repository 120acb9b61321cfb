"""AdamW over the stacked parameters of several members, one row per member (``--batch-trials``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch


class StackedAdamW:
    """The trainable parameters of several members stacked along a new first dimension, as leaves of
    their own, with AdamW over them: one row per member, each with its own learning rate, weight
    decay and step count (members join the stack at different times), the arithmetic of
    :class:`torch.optim.AdamW` (defaults: betas 0.9 and 0.999, eps 1e-8) and of
    :func:`torch.nn.utils.clip_grad_norm_` per row. One set of tensor operations per parameter
    serves the whole group, where one optimiser per member cost K optimiser steps each batch.
    """

    def __init__(self, members: Sequence[Mapping[str, torch.Tensor]], names: Sequence[str], *, lr: Sequence[float],
                 weight_decay: Sequence[float], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.names = list(names)
        self.params: dict[str, torch.Tensor] = {}
        self._betas, self._eps = betas, eps
        self._lr = self._decay = self._steps = torch.zeros(0, dtype=torch.float64)
        self._exp_avg: dict[str, torch.Tensor] = {}
        self._exp_avg_sq: dict[str, torch.Tensor] = {}
        self.add(members, lr=lr, weight_decay=weight_decay)

    def __len__(self) -> int:
        return len(self._lr)

    def add(self, members: Sequence[Mapping[str, torch.Tensor]], *, lr: Sequence[float], weight_decay: Sequence[float]) -> None:
        """New rows at the end (fresh optimiser state, step 0), from these members' current parameters."""
        if not members:
            return
        fresh = {n: torch.stack([m[n].detach() for m in members]) for n in self.names}
        device = next(iter(fresh.values())).device

        def grow(old: dict[str, torch.Tensor], new: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            return {n: torch.cat([old[n], new[n]]) if n in old else new[n] for n in self.names}

        self.params = {n: p.requires_grad_() for n, p in grow({n: p.detach() for n, p in self.params.items()}, fresh).items()}
        self._exp_avg = grow(self._exp_avg, {n: torch.zeros_like(p) for n, p in fresh.items()})
        self._exp_avg_sq = grow(self._exp_avg_sq, {n: torch.zeros_like(p) for n, p in fresh.items()})
        as_rows = {"dtype": torch.float64, "device": device}
        self._lr = torch.cat([self._lr.to(device), torch.tensor(list(lr), **as_rows)])
        self._decay = torch.cat([self._decay.to(device), torch.tensor(list(weight_decay), **as_rows)])
        self._steps = torch.cat([self._steps.to(device), torch.zeros(len(members), **as_rows)])
        self._shape_rows()

    def _shape_rows(self) -> None:
        """Per parameter, each row's decay factor ``1 - lr * weight_decay``, shaped to broadcast."""
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
        step_size = self._lr / (1 - beta1 ** self._steps)
        correction2 = (1 - beta2 ** self._steps).sqrt()
        exp_avgs, exp_avg_sqs = [self._exp_avg[n] for n in names], [self._exp_avg_sq[n] for n in names]
        torch._foreach_mul_(params, [self._decay_rows[n] for n in names])
        torch._foreach_lerp_(exp_avgs, grads, 1 - beta1)
        torch._foreach_mul_(exp_avg_sqs, beta2)
        torch._foreach_addcmul_(exp_avg_sqs, grads, grads, 1 - beta2)
        denominators = torch._foreach_sqrt(exp_avg_sqs)
        torch._foreach_div_(denominators, [_per_row(correction2, p) for p in params])
        torch._foreach_add_(denominators, self._eps)
        steps = torch._foreach_mul(exp_avgs, [_per_row(step_size, p) for p in params])
        torch._foreach_addcdiv_(params, steps, denominators, -1)
        for p in params:
            p.grad = None

    def keep(self, rows: Sequence[int]) -> None:
        """Only these rows (members) go on: the others leave the stack with their optimiser state."""
        index = torch.tensor(list(rows), dtype=torch.long, device=self._lr.device)
        self.params = {n: p.detach().index_select(0, index).requires_grad_() for n, p in self.params.items()}
        self._exp_avg = {n: v.index_select(0, index) for n, v in self._exp_avg.items()}
        self._exp_avg_sq = {n: v.index_select(0, index) for n, v in self._exp_avg_sq.items()}
        self._lr, self._decay, self._steps = self._lr[index], self._decay[index], self._steps[index]
        self._shape_rows()

    @torch.no_grad()
    def write_back(self, members: Sequence[Mapping[str, torch.Tensor]]) -> None:
        """Copy each row into its member's own parameters (row order: the members in the stack)."""
        for row, member in enumerate(members):
            for n, p in self.params.items():
                member[n].copy_(p[row])


def _per_row(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """One value per row of a stacked tensor, in its dtype, shaped ``(rows, 1, ...)`` to broadcast over it."""
    return values.to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

