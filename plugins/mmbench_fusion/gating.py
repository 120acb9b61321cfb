"""Fusions where one modality scales another: gated multimodal units and FiLM conditioning.

Both are multiplicative, so (unlike additive late fusion) they can express interactions
between modalities while staying linear in each modality's width.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmbench import Encoded, Float, Fusion, Int, mlp
from mmbench.nn import masked_mean


class GatedMultimodalUnit(Fusion):
    """GMU: each modality proposes ``tanh(W_m x_m)``; gates computed from all modalities mix them.

    With two modalities this is the paper's ``z * h1 + (1 - z) * h2`` (``z`` a sigmoid); with
    more, the gates are a softmax over modalities per hidden unit, which reduces to the same.
    """

    name = "gmu"
    batchable = True
    reads_tokens = False
    min_modalities = 2
    description = "gated multimodal unit: per-unit gates computed from all modalities mix per-modality tanh features"
    paper = "Arevalo et al., 2017, Gated Multimodal Units for Information Fusion"
    space = {"hidden": Int(16, 256, log=True), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        self.hidden = hidden
        self.features = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in dims.items()})
        self.gates = nn.Linear(sum(dims.values()), hidden * len(dims))
        self.head = mlp(hidden, hidden, n_outputs, dropout=dropout)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        pooled = [encoded[m].pooled for m in self.order]
        features = torch.stack([torch.tanh(self.features[m](x)) for m, x in zip(self.order, pooled)], dim=1)
        gates = self.gates(torch.cat(pooled, dim=-1)).view(-1, len(self.order), self.hidden).softmax(dim=1)
        return self.head((gates * features).sum(dim=1))


class FiLMFusion(Fusion):
    """Symmetric FiLM: every modality's tokens are scaled and shifted by the other modalities.

    For each modality, ``n_layers`` FiLM blocks compute ``relu((1 + gamma) * W x + beta)`` per
    position, with ``gamma, beta`` predicted from the other modalities' pooled vectors; the
    modulated tokens are mean-pooled over real positions and the modalities concatenated for
    the head. ``1 + gamma`` makes an untrained block close to an ordinary layer. Applying it
    to every modality in turn avoids having to name a "conditioned" modality in the space.
    """

    name = "film"
    min_modalities = 2
    description = "FiLM: each modality's tokens modulated (scale, shift) by the others' pooled vectors"
    paper = "Perez et al., 2018, FiLM: Visual Reasoning with a General Conditioning Layer"
    space = {"hidden": Int(16, 128, log=True), "n_layers": Int(1, 2), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, hidden: int = 64, n_layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        self.hidden = hidden
        self.n_layers = n_layers
        total = sum(dims.values())
        self.inputs = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in dims.items()})
        self.layers = nn.ModuleDict({m: nn.ModuleList(nn.Linear(hidden, hidden) for _ in range(n_layers - 1)) for m in dims})
        self.conditions = nn.ModuleDict({m: nn.Linear(total - d, 2 * hidden * n_layers) for m, d in dims.items()})
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden * len(dims), n_outputs)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        pooled = []
        for m in self.order:
            tokens, mask = encoded[m].token_view()
            others = torch.cat([encoded[o].pooled for o in self.order if o != m], dim=-1)
            gamma, beta = self.conditions[m](others).view(-1, self.n_layers, 2, self.hidden).unbind(dim=2)
            x = self.inputs[m](tokens)
            for layer in range(self.n_layers):
                if layer > 0:
                    x = self.layers[m][layer - 1](x)
                x = torch.relu((1 + gamma[:, layer, None]) * x + beta[:, layer, None])
            pooled.append(masked_mean(x, mask))
        return self.head(self.dropout(torch.cat(pooled, dim=-1)))
