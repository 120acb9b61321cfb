"""``example_sum``: every modality projected to one width and added, then an MLP head."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmbench import Encoded, Float, Fusion, Int, mlp


class SumFusion(Fusion):
    """Additive fusion: ``head(sum_m W_m pooled_m)``; cheaper than concatenation for many modalities."""

    name = "example_sum"
    reads_tokens = False  # only ``pooled``: trials on cached features get pooled vectors, not token states
    description = "project each modality to one width, add, MLP head"
    space = {"width": Int(16, 128, log=True), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, width: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)  # a fixed order: dict order must not change the result
        self.project = nn.ModuleDict({m: nn.Linear(d, width) for m, d in dims.items()})
        self.head = mlp(width, width, n_outputs, dropout=dropout)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        total = sum(self.project[m](encoded[m].pooled) for m in self.order)
        return self.head(torch.relu(total))
