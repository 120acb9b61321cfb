"""The stand-in encoder a trial uses for a cached modality (:mod:`mmbench.train.features`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from mmbench.components import Encoded, Encoder


class CachedEncoder(Encoder):
    """Stand-in for a frozen encoder whose outputs are given in the batch.

    ``forward({"pooled", "tokens"?, "mask"?})`` returns them as an :class:`Encoded`; any other
    batch (raw inputs, e.g. when a saved model is used for prediction) goes through the real
    encoder. The real encoder's submodules, parameters and buffers are registered here under
    the same names, so ``state_dict`` keys and ``.to(device)`` are those of the real encoder.

    Args:
        inner: the real (frozen) encoder, shared by every trial that uses the same entry.
        params: this trial's hyperparameters of the encoder; those the entry's key leaves out
            (:meth:`~mmbench.components.Encoder.cache_params`) are applied by
            :meth:`~mmbench.components.Encoder.from_cache` on every output.
        pooled_only: the batch's ``pooled`` already is ``from_cache``'s, for ``params`` (the
            trial's fusion reads nothing else): returned as it is.
    """

    name = "cached"
    description = "outputs of a frozen encoder, precomputed once (mmbench.train.features)"

    def __init__(self, inner: Encoder, params: Mapping[str, Any] | None = None, *, pooled_only: bool = False) -> None:
        super().__init__(inner.info)
        self.params = dict(params or {})
        self.pooled_only = pooled_only
        self.out_dim = int(inner.out_dim)
        for child_name, child in inner.named_children():
            self.add_module(child_name, child)
        self._parameters.update(inner._parameters)
        self._buffers.update(inner._buffers)
        object.__setattr__(self, "_inner", inner)  # not a child: its children are already ours

    @property
    def inner(self) -> Encoder:
        """The real encoder."""
        return self._inner

    def train(self, mode: bool = True) -> CachedEncoder:
        """Switch mode; the real encoder decides what its backbone does (a frozen one stays in eval)."""
        super().train(mode)
        self._inner.train(mode)
        return self

    def forward(self, batch: Mapping[str, torch.Tensor]) -> Encoded:
        if "pooled" in batch and self.pooled_only:
            return Encoded(pooled=batch["pooled"])
        if "pooled" in batch:
            encoded = Encoded(pooled=batch["pooled"], tokens=batch.get("tokens"), mask=batch.get("mask"))
        else:
            encoded = self._inner(batch)
        return type(self._inner).from_cache(encoded, **self.params)

    def missing(self, batch: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """An absent modality: zero features and (if any) an all-padding mask."""
        if "pooled" not in batch:
            return self._inner.missing(batch)
        return {key: torch.zeros_like(value) for key, value in batch.items()}
