"""``tabular.mlp``: numeric features and one learned embedding per categorical feature, then an MLP.

Reads the default tabular batch: ``numeric`` float ``(B, Fn)`` (standardised, missing -> 0) and
``categorical`` long ``(B, Fc)`` (0 = unknown). Either may be absent when the table has no such
column. A row of a table has no positions, so only the pooled vector is returned.
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench import ConfigError, Encoded, Encoder, Float, Int, ModalityInfo, mlp


class MLPTabular(Encoder):
    """Entity embeddings for categories, concatenated with the numbers, through a ReLU MLP."""

    name = "tabular.mlp"
    modality = "tabular"
    description = "MLP over numeric + embedded categorical features"
    paper = "Guo & Berkhahn, 2016, Entity Embeddings of Categorical Variables"
    space = {
        "hidden": Int(16, 256, log=True),
        "n_layers": Int(1, 3),
        "embed_dim": Int(2, 16, log=True),
        "dropout": Float(0.0, 0.5),
    }

    def __init__(self, info: ModalityInfo, hidden: int = 64, n_layers: int = 2, embed_dim: int = 8, dropout: float = 0.1) -> None:
        super().__init__(info)
        self.n_numeric = int(info.n_numeric or 0)
        cardinalities = tuple(int(c) for c in info.cardinalities or ())
        if not self.n_numeric and not cardinalities:
            raise ConfigError(f"encoder '{self.name}': modality '{info.name}' has no numeric or categorical feature")
        self.embeddings = nn.ModuleList(nn.Embedding(max(c, 1), embed_dim) for c in cardinalities)
        # n_layers ReLU layers, then a linear map to the output width.
        self.net = mlp(self.n_numeric + embed_dim * len(cardinalities), hidden, hidden, n_layers=n_layers, dropout=dropout)
        self.out_dim = hidden

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        parts: list[torch.Tensor] = []
        if self.n_numeric:
            parts.append(batch["numeric"].float())
        if self.embeddings:
            categorical = batch["categorical"]
            parts += [embedding(categorical[:, i]) for i, embedding in enumerate(self.embeddings)]
        return Encoded(pooled=self.net(torch.cat(parts, dim=1)))
