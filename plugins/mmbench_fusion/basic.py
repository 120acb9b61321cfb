"""Early and late fusion: the two ends of the fusion spectrum."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmbench import Categorical, Encoded, Float, Fusion, Int, mlp


class EarlyFusion(Fusion):
    """Concatenate every modality's pooled vector, then one MLP head."""

    name = "early"
    batchable = True
    reads_tokens = False
    description = "concatenate pooled encodings, then an MLP head"
    paper = "Baltrusaitis et al., 2019, Multimodal Machine Learning: A Survey and Taxonomy"
    space = {"hidden": Int(32, 256, log=True), "n_layers": Int(1, 2), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, hidden: int = 128, n_layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        self.head = mlp(sum(dims.values()), hidden, n_outputs, n_layers=n_layers, dropout=dropout)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        return self.head(torch.cat([encoded[m].pooled for m in self.order], dim=-1))


class LateFusion(Fusion):
    """A head per modality; decisions combined by mean or learned softmax weights."""

    name = "late"
    batchable = True
    reads_tokens = False
    description = "per-modality heads; logits averaged or combined with learned weights"
    paper = "Snoek et al., 2005, Early versus Late Fusion in Semantic Video Analysis"
    space = {"hidden": Int(32, 256, log=True), "dropout": Float(0.0, 0.5), "combine": Categorical(["mean", "learned"])}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, hidden: int = 64, dropout: float = 0.1, combine: str = "mean") -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        self.heads = nn.ModuleDict({m: mlp(d, hidden, n_outputs, dropout=dropout) for m, d in dims.items()})
        self.weights = nn.Parameter(torch.zeros(len(dims))) if combine == "learned" else None

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        logits = torch.stack([self.heads[m](encoded[m].pooled) for m in self.order], dim=0)
        if self.weights is None:
            return logits.mean(dim=0)
        return (self.weights.softmax(dim=0)[:, None, None] * logits).sum(dim=0)


class HybridFusion(Fusion):
    """Early and late fusion side by side: a joint head plus per-modality heads, logits mixed.

    The joint head can model interactions; the per-modality heads keep each modality's own
    evidence usable when the joint head overfits, which is why hybrid schemes are common in
    multimedia analysis.
    """

    name = "hybrid"
    batchable = True
    reads_tokens = False
    description = "early head + per-modality late heads; logits mixed by a fixed or learned weight"
    paper = "Atrey et al., 2010, Multimodal Fusion for Multimedia Analysis: a Survey"
    space = {"hidden": Int(32, 256, log=True), "dropout": Float(0.0, 0.5), "combine": Categorical(["mean", "learned"])}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, hidden: int = 64, dropout: float = 0.1, combine: str = "mean") -> None:
        super().__init__(dims, n_outputs)
        self.early = EarlyFusion(dims, n_outputs, hidden=hidden, n_layers=1, dropout=dropout)
        self.late = LateFusion(dims, n_outputs, hidden=hidden, dropout=dropout, combine=combine)
        # mixing weight of the early head, as a logit: 0 means an even early/late split
        self.mix = nn.Parameter(torch.zeros(())) if combine == "learned" else None

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        weight = torch.sigmoid(self.mix) if self.mix is not None else 0.5
        return weight * self.early(encoded) + (1 - weight) * self.late(encoded)
