"""Text encoders trained from scratch on the default token ids (``ids``, ``mask``).

Every one returns the per-token vectors as tokens with the padding mask, and a pooled vector of
the same width, so attention fusions can attend to words.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mmbench import Categorical, ConfigError, Encoded, Encoder, Float, Int, ModalityInfo
from mmbench.nn import AttentionPool, masked_mean


def vocab_size(info: ModalityInfo, encoder: str) -> int:
    """The fitted vocabulary size (ids ``0`` = padding, ``1`` = unknown are included)."""
    if not info.vocab_size:
        raise ConfigError(f"encoder '{encoder}': modality '{info.name}' has no vocab_size (was it preprocessed?)")
    return int(info.vocab_size)


class BagOfEmbeddingsText(Encoder):
    """Word embeddings averaged (or max-pooled) over the text: order-free and fast."""

    name = "text.bow"
    modality = "text"
    description = "bag of word embeddings, mean or max pooled"
    paper = "Joulin et al., 2017, Bag of Tricks for Efficient Text Classification (fastText)"
    space = {"dim": Int(16, 128, log=True), "pooling": Categorical(["mean", "max"]), "dropout": Float(0.0, 0.3)}

    def __init__(self, info: ModalityInfo, dim: int = 64, pooling: str = "mean", dropout: float = 0.1) -> None:
        super().__init__(info)
        self.embedding = nn.Embedding(vocab_size(info, self.name), dim, padding_idx=0)
        self.dropout = nn.Dropout(dropout)
        self.pooling = pooling
        self.out_dim = dim

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        mask = batch["mask"]
        tokens = self.dropout(self.embedding(batch["ids"]))
        if self.pooling == "max":
            filled = tokens.masked_fill(~mask.unsqueeze(-1), torch.finfo(tokens.dtype).min)
            pooled = torch.where(mask.any(dim=1, keepdim=True), filled.amax(dim=1), torch.zeros_like(filled[:, 0]))
        else:
            pooled = masked_mean(tokens, mask)
        return Encoded(pooled=pooled, tokens=tokens, mask=mask)


class RNNText(Encoder):
    """A bidirectional GRU or LSTM over word embeddings, pooled by additive attention."""

    name = "text.rnn"
    modality = "text"
    description = "BiGRU / BiLSTM over word embeddings with attention pooling"
    paper = "Yang et al., 2016, Hierarchical Attention Networks for Document Classification"
    space = {
        "cell": Categorical(["gru", "lstm"]),
        "embed_dim": Int(16, 128, log=True),
        "hidden": Int(16, 128, log=True),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(self, info: ModalityInfo, cell: str = "gru", embed_dim: int = 64, hidden: int = 64, dropout: float = 0.1) -> None:
        super().__init__(info)
        if cell not in ("gru", "lstm"):
            raise ConfigError(f"encoder '{self.name}': cell must be 'gru' or 'lstm', got {cell!r}")
        self.embedding = nn.Embedding(vocab_size(info, self.name), embed_dim, padding_idx=0)
        rnn = nn.GRU if cell == "gru" else nn.LSTM
        self.rnn = rnn(embed_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.pool = AttentionPool(2 * hidden)
        self.out_dim = 2 * hidden

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        ids, mask = batch["ids"], batch["mask"]
        embedded = self.dropout(self.embedding(ids))
        # Packing makes the backward direction start at each text's last real token, not at padding.
        lengths = mask.sum(dim=1).clamp(min=1).cpu()
        packed = pack_padded_sequence(embedded, lengths, batch_first=True, enforce_sorted=False)
        states, _ = self.rnn(packed)
        states, _ = pad_packed_sequence(states, batch_first=True, total_length=ids.shape[1])
        states = self.dropout(states)
        return Encoded(pooled=self.pool(states, mask), tokens=states, mask=mask)


def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """The fixed sine/cosine position encodings of Vaswani et al., 2017 ``(length, dim)``."""
    position = torch.arange(length, device=device, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim, device=device)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class TransformerText(Encoder):
    """A small transformer encoder trained from scratch; tokens mean-pooled over the mask."""

    name = "text.transformer"
    modality = "text"
    description = "small transformer encoder from scratch (sinusoidal positions, pre-norm), mean pooled"
    paper = "Vaswani et al., 2017, Attention Is All You Need"
    space = {
        "d_model": Categorical([32, 64, 128]),
        "n_heads": Categorical([2, 4]),
        "n_layers": Int(1, 3),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(self, info: ModalityInfo, d_model: int = 64, n_heads: int = 4, n_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__(info)
        if d_model % n_heads or d_model % 2:
            raise ConfigError(f"encoder '{self.name}': d_model={d_model} must be even and divisible by n_heads={n_heads}")
        self.embedding = nn.Embedding(vocab_size(info, self.name), d_model, padding_idx=0)
        layer = nn.TransformerEncoderLayer(
            d_model, n_heads, dim_feedforward=2 * d_model, dropout=dropout, batch_first=True, norm_first=True
        )
        # No nested-tensor fast path: it changes outputs at padded positions between train and eval.
        self.encoder = nn.TransformerEncoder(layer, n_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.dropout = nn.Dropout(dropout)
        self.scale = math.sqrt(d_model)
        self.out_dim = d_model

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        ids, mask = batch["ids"], batch["mask"]
        x = self.embedding(ids) * self.scale + sinusoidal_positions(ids.shape[1], self.out_dim, ids.device)
        # An empty text would leave attention nothing to attend to (NaN); let it see its first slot.
        attendable = mask.clone()
        attendable[:, 0] |= ~mask.any(dim=1)
        tokens = self.norm(self.encoder(self.dropout(x), src_key_padding_mask=~attendable))
        return Encoded(pooled=masked_mean(tokens, mask), tokens=tokens, mask=mask)
