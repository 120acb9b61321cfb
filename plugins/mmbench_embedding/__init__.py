"""Built-in encoders for precomputed vectors and vector sequences (modality ``embedding``)."""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_embedding.kind import EmbeddingKind

    return [EmbeddingKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_embedding.encoders import GRUEmbedding, MLPEmbedding

    return [MLPEmbedding, GRUEmbedding]
