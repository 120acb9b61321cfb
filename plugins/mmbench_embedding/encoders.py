"""Encoders for ``embedding`` modalities: vectors ``(B, D)`` or sequences ``(B, T, D)``."""

from __future__ import annotations

import torch
from torch import nn

from mmbench import Categorical, Encoded, Encoder, Float, Int, ModalityInfo


class MLPEmbedding(Encoder):
    """Per-step MLP; a sequence is mean-pooled and its steps are kept as tokens."""

    name = "embedding.mlp"
    modality = "embedding"
    description = "MLP over a vector (or each step of a sequence, mean-pooled)"
    space = {"hidden": Int(16, 128, log=True), "n_layers": Int(1, 2), "dropout": Float(0.0, 0.3)}

    def __init__(self, info: ModalityInfo, hidden: int = 64, n_layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__(info)
        layers: list[nn.Module] = []
        width = int(info.dim)
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
            width = hidden
        self.net = nn.Sequential(*layers)
        self.out_dim = hidden

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        values = self.net(batch["values"])
        if values.dim() == 3:
            return Encoded(pooled=values.mean(dim=1), tokens=values)
        return Encoded(pooled=values)


class GRUEmbedding(Encoder):
    """A GRU over a sequence's steps (a vector is a one-step sequence); last state pooled."""

    name = "embedding.gru"
    modality = "embedding"
    description = "GRU over a vector sequence; final hidden state pooled, states as tokens"
    paper = "Cho et al., 2014, Learning Phrase Representations using RNN Encoder-Decoder"
    space = {"hidden": Int(16, 128, log=True), "bidirectional": Categorical([False, True])}

    def __init__(self, info: ModalityInfo, hidden: int = 64, bidirectional: bool = False) -> None:
        super().__init__(info)
        self.gru = nn.GRU(int(info.dim), hidden, batch_first=True, bidirectional=bidirectional)
        self.out_dim = hidden * (2 if bidirectional else 1)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        values = batch["values"]
        if values.dim() == 2:
            values = values.unsqueeze(1)
        states, last = self.gru(values)
        pooled = torch.cat(list(last), dim=-1)
        return Encoded(pooled=pooled, tokens=states)
