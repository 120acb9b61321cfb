"""Built-in text encoders: bag of embeddings, BiGRU/BiLSTM with attention, a small transformer,
and a pretrained Hugging Face encoder (default: the all-MiniLM-L6-v2 sentence encoder)."""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_text.kind import TextKind

    return [TextKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_text.pretrained import PretrainedText
    from mmbench_text.scratch import BagOfEmbeddingsText, RNNText, TransformerText

    return [BagOfEmbeddingsText, RNNText, TransformerText, PretrainedText]
