"""Multiplicative fusions: tensor fusion (TFN), its low-rank form (LMF) and bilinear pooling.

They model every cross-modal product of features, which is what an interaction such as an
XOR of two modalities needs and what additive (late) fusion cannot express. They differ in
how they keep the outer product affordable: TFN projects each modality to a few dimensions
first, LMF never builds the tensor (rank-``r`` factors per modality), bilinear pooling keeps
a Hadamard product (low rank) or a count sketch (compact).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import torch
from torch import nn

from mmbench import Categorical, ConfigError, Encoded, Float, Fusion, Int, mlp

#: Upper bound on TFN's flattened tensor, so a task with many modalities still fits in memory.
MAX_TENSOR_FEATURES = 8192


def _with_one(x: torch.Tensor) -> torch.Tensor:
    """Append a constant 1 to each row, so products keep the unimodal (and constant) terms."""
    return torch.cat([x, torch.ones_like(x[:, :1])], dim=-1)


class TensorFusion(Fusion):
    """TFN: the outer product of ``[h_m, 1]`` over modalities, flattened, then an MLP.

    Each modality is first projected to ``proj`` dimensions. The appended 1 keeps unimodal and
    bimodal terms alongside the full ``k``-way interactions. ``proj`` is capped so that
    ``(proj + 1) ** k`` stays under :data:`MAX_TENSOR_FEATURES` (it matters from 4 modalities).
    """

    name = "tfn"
    batchable = True
    reads_tokens = False
    min_modalities = 2
    description = "tensor fusion: outer product of projected [h, 1] vectors over modalities, then an MLP"
    paper = "Zadeh et al., 2017, Tensor Fusion Network for Multimodal Sentiment Analysis"
    space = {"proj": Int(2, 16), "hidden": Int(16, 256, log=True), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, proj: int = 8, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        cap = math.floor(MAX_TENSOR_FEATURES ** (1 / len(dims)) + 1e-9) - 1
        self.proj = max(1, min(proj, cap))
        self.projections = nn.ModuleDict({m: nn.Linear(d, self.proj) for m, d in dims.items()})
        self.head = mlp((self.proj + 1) ** len(dims), hidden, n_outputs, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        tensor: torch.Tensor | None = None
        for m in self.order:
            z = _with_one(self.projections[m](encoded[m].pooled))
            tensor = z if tensor is None else (tensor.unsqueeze(-1) * z.unsqueeze(1)).flatten(1)
        assert tensor is not None
        return self.head(self.dropout(tensor))


class LowRankFusion(Fusion):
    """LMF: TFN's weight tensor as a sum of ``rank`` products of modality-specific factors.

    ``h = sum_r w_r * prod_m (W_m^r [x_m, 1])``: the same function class as a rank-limited
    TFN, at a cost linear (not exponential) in the number of modalities.
    """

    name = "lmf"
    batchable = True
    reads_tokens = False
    min_modalities = 2
    description = "low-rank multimodal fusion: rank-r modality-specific factors multiplied elementwise"
    paper = "Liu et al., 2018, Efficient Low-rank Multimodal Fusion with Modality-Specific Factors"
    space = {"rank": Int(1, 16), "hidden": Int(16, 128, log=True), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, rank: int = 4, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        self.order = sorted(dims)
        # std 1/sqrt(d+1): each factor's output is O(1), so the product over modalities neither
        # explodes nor vanishes at initialisation
        self.factors = nn.ParameterDict(
            {m: nn.Parameter(torch.randn(rank, d + 1, hidden) / math.sqrt(d + 1)) for m, d in dims.items()}
        )
        self.rank_weights = nn.Parameter(torch.full((rank,), 1.0 / rank))
        self.bias = nn.Parameter(torch.zeros(hidden))
        self.head = mlp(hidden, hidden, n_outputs, dropout=dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        fused: torch.Tensor | None = None
        for m in self.order:
            z = torch.einsum("bd,rdh->brh", _with_one(encoded[m].pooled), self.factors[m])
            fused = z if fused is None else fused * z
        assert fused is not None
        h = torch.einsum("brh,r->bh", fused, self.rank_weights) + self.bias
        return self.head(self.dropout(h))


class BilinearPooling(Fusion):
    """Bilinear pooling, low-rank (Hadamard product) or compact (count sketch + FFT).

    ``low_rank`` (MLB): ``prod_m tanh(U_m x_m)`` in ``dim`` dimensions. ``compact`` (MCB): each
    modality is count-sketched to ``dim`` dimensions with fixed random hashes; the product of
    their FFTs is the sketch of the full outer product. Both are followed by signed square root
    and L2 normalisation (compact, as in the paper) and a linear head.
    """

    name = "bilinear"
    reads_tokens = False
    min_modalities = 2
    description = "bilinear pooling of all modalities: low-rank Hadamard (MLB) or compact count-sketch (MCB)"
    paper = (
        "Kim et al., 2017, Hadamard Product for Low-rank Bilinear Pooling; "
        "Fukui et al., 2016, Multimodal Compact Bilinear Pooling for VQA and Visual Grounding"
    )
    space = {"method": Categorical(["low_rank", "compact"]), "dim": Int(16, 512, log=True), "dropout": Float(0.0, 0.5)}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, method: str = "low_rank", dim: int = 128, dropout: float = 0.1) -> None:
        super().__init__(dims, n_outputs)
        if method not in ("low_rank", "compact"):
            raise ConfigError(f"fusion 'bilinear': method must be 'low_rank' or 'compact', got {method!r}")
        self.order = sorted(dims)
        self.method = method
        self.dim = dim
        if method == "low_rank":
            self.projections = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})
        else:
            # fixed hashes (seeded by position, not by the global RNG): a saved model reloads the
            # same sketch, and building the fusion does not shift anyone else's random stream
            generator = torch.Generator().manual_seed(0)
            for index, m in enumerate(self.order):
                buckets = torch.randint(0, dim, (dims[m],), generator=generator)
                signs = torch.randint(0, 2, (dims[m],), generator=generator).float() * 2 - 1
                sketch = torch.zeros(dims[m], dim)
                sketch[torch.arange(dims[m]), buckets] = signs
                self.register_buffer(f"sketch_{index}", sketch)
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(dim, n_outputs)

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        if self.method == "low_rank":
            pooled: torch.Tensor | None = None
            for m in self.order:
                z = torch.tanh(self.projections[m](encoded[m].pooled))
                pooled = z if pooled is None else pooled * z
            assert pooled is not None
            return self.head(self.dropout(pooled))
        x = encoded[self.order[0]].pooled
        with torch.autocast(device_type=x.device.type, enabled=False):  # FFTs need float32
            spectrum: torch.Tensor | None = None
            for index, m in enumerate(self.order):
                sketched = encoded[m].pooled.float() @ getattr(self, f"sketch_{index}")
                f = torch.fft.rfft(sketched, dim=-1)
                spectrum = f if spectrum is None else spectrum * f
            assert spectrum is not None
            pooled = torch.fft.irfft(spectrum, n=self.dim, dim=-1)
            pooled = torch.sign(pooled) * torch.sqrt(pooled.abs() + 1e-6)
            pooled = nn.functional.normalize(pooled, dim=-1)
        return self.head(self.dropout(pooled))
