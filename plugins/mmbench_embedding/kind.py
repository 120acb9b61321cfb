"""The ``embedding`` modality kind: a precomputed vector ``(D,)`` or sequence of vectors ``(T, D)`` per row."""

from __future__ import annotations

from typing import Any

from mmbench import EmbeddingPreprocessor, ModalityInfo, ModalityKind, Preprocessor


class EmbeddingKind(ModalityKind):
    """One list-valued column -> ``values`` ``(B, D)`` or ``(B, T, D)`` float32."""

    name = "embedding"
    description = "precomputed vectors (D,) or sequences (T, D) in one column -> values"
    info_fields = ("dim", "seq_len")
    example_sizes = {"dim": 6}

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        return EmbeddingPreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: Any) -> dict[str, Any]:
        import torch

        shape = (batch_size, info.seq_len, info.dim) if info.seq_len else (batch_size, info.dim)
        return {"values": torch.randn(shape, generator=generator)}

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: Any) -> dict[str, list[Any]]:
        import numpy as np

        return {c: rng.normal(size=(n_rows, 6)).astype(np.float32).tolist() for c in info.columns}
