"""Cross-modal attention (a small multimodal transformer) over the encoders' token outputs."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from mmbench import Categorical, ConfigError, Encoded, Float, Fusion, Int, mlp
from mmbench.nn import masked_mean


class _AttentionBlock(nn.Module):
    """Pre-norm attention + feed-forward block; queries ``x``, attends to ``context`` (or to ``x``).

    ``add_bias_kv`` gives every query a learned extra key/value to attend to, so a query whose
    context has a single real position (a pooled-only encoder) still has a non-trivial softmax,
    and a row whose context is all padding attends to that slot instead of producing NaN.
    """

    def __init__(self, dim: int, n_heads: int, dropout: float, *, cross: bool) -> None:
        super().__init__()
        self.norm_query = nn.LayerNorm(dim)
        self.norm_context = nn.LayerNorm(dim) if cross else None
        self.attention = nn.MultiheadAttention(dim, n_heads, dropout=dropout, batch_first=True, add_bias_kv=True)
        self.norm_ff = nn.LayerNorm(dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, context: torch.Tensor | None = None, context_mask: torch.Tensor | None = None) -> torch.Tensor:
        query = self.norm_query(x)
        if context is None:
            keys = query
        else:
            assert self.norm_context is not None, "a self-attention block was given a context"
            keys = self.norm_context(context)
        padding = None if context_mask is None else ~context_mask  # torch masks out True positions
        attended, _ = self.attention(query, keys, keys, key_padding_mask=padding, need_weights=False)
        x = x + self.dropout(attended)
        return x + self.dropout(self.ff(self.norm_ff(x)))


class CrossModalAttention(Fusion):
    """A multimodal transformer: intra-modal self-attention, then inter-modal attention, per layer.

    Each modality's tokens (``Encoded.token_view()``; a pooled-only encoding is one token) are
    projected to ``d_model`` and tagged with a learned modality embedding. In each layer every
    modality first attends to itself, then its tokens query the tokens of all other modalities
    (as MulT's cross-modal transformers do, with one block per target modality over the
    concatenated sources). Padding positions are masked as keys and excluded from the final
    masked mean per modality; the pooled modalities are concatenated for an MLP head.
    """

    name = "cross_attention"
    min_modalities = 2
    description = "multimodal transformer: per-modality self-attention + cross-modal attention over token outputs"
    paper = "Tsai et al., 2019, Multimodal Transformer for Unaligned Multimodal Language Sequences"
    space = {
        "d_model": Categorical([16, 32, 64]),
        "n_heads": Categorical([1, 2, 4]),
        "n_layers": Int(1, 2),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(self, dims: Mapping[str, int], n_outputs: int, d_model: int = 32, n_heads: int = 2, n_layers: int = 1, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        if d_model % n_heads:
            raise ConfigError(f"fusion 'cross_attention': d_model={d_model} is not divisible by n_heads={n_heads}")
        self.order = sorted(dims)
        self.inputs = nn.ModuleDict({m: nn.Linear(d, d_model) for m, d in dims.items()})
        self.modality_embedding = nn.ParameterDict({m: nn.Parameter(torch.randn(d_model) * 0.02) for m in dims})
        self.self_attention = nn.ModuleList(
            nn.ModuleDict({m: _AttentionBlock(d_model, n_heads, dropout, cross=False) for m in dims}) for _ in range(n_layers)
        )
        self.cross_attention = nn.ModuleList(
            nn.ModuleDict({m: _AttentionBlock(d_model, n_heads, dropout, cross=True) for m in dims}) for _ in range(n_layers)
        )
        self.norm = nn.LayerNorm(d_model)
        self.head = mlp(d_model * len(dims), d_model, n_outputs, dropout=dropout)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        states: dict[str, torch.Tensor] = {}
        masks: dict[str, torch.Tensor] = {}
        for m in self.order:
            tokens, masks[m] = encoded[m].token_view()
            states[m] = self.inputs[m](tokens) + self.modality_embedding[m]
        for intra, inter in zip(self.self_attention, self.cross_attention):
            states = {m: intra[m](states[m], context_mask=masks[m]) for m in self.order}
            # every target reads the sources as they were before this layer's cross step
            states = {
                m: inter[m](
                    states[m],
                    torch.cat([states[o] for o in self.order if o != m], dim=1),
                    torch.cat([masks[o] for o in self.order if o != m], dim=1),
                )
                for m in self.order
            }
        pooled = [masked_mean(self.norm(states[m]), masks[m]) for m in self.order]
        return self.head(torch.cat(pooled, dim=-1))
