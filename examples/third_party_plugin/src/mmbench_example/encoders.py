"""``embedding.gated``: gated linear units over precomputed vectors or vector sequences."""

from __future__ import annotations

import torch
from torch import nn

from mmbench import Encoded, Encoder, Float, Int, ModalityInfo


class GatedEmbedding(Encoder):
    """``GLU(x W) `` per vector (or per step of a sequence, then mean-pooled over the steps)."""

    name = "embedding.gated"
    modality = "embedding"
    description = "gated linear units over a vector, or each step of a sequence (mean-pooled)"
    paper = "Dauphin et al., 2017, Language Modeling with Gated Convolutional Networks"
    space = {"width": Int(8, 64, log=True), "dropout": Float(0.0, 0.3)}

    def __init__(self, info: ModalityInfo, width: int = 32, dropout: float = 0.1) -> None:
        super().__init__(info)
        self.project = nn.Linear(int(info.dim), 2 * width)
        self.gate = nn.GLU(dim=-1)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = width

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        values = self.dropout(self.gate(self.project(batch["values"])))
        if values.dim() == 3:  # a sequence: its steps are tokens
            return Encoded(pooled=values.mean(dim=1), tokens=values)
        return Encoded(pooled=values)
