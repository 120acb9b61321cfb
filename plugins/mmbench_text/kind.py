"""The ``text`` modality kind: strings, one or more columns joined into one token sequence."""

from __future__ import annotations

from typing import Any

from mmbench import ModalityInfo, ModalityKind, Preprocessor

_WORDS = "the a cat dog sat on mat red blue big small ran fast slow and".split()


class TextKind(ModalityKind):
    """Text columns -> ``ids`` ``(B, T)`` int64 (0 = padding) and ``mask`` ``(B, T)`` bool."""

    name = "text"
    description = "strings; word vocabulary fitted on train -> ids + mask"
    info_fields = ("vocab_size", "seq_len")
    example_sizes = {"vocab_size": 30, "seq_len": 7}

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        from mmbench_text.preprocess import TextPreprocessor

        return TextPreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: Any) -> dict[str, Any]:
        """Rows of different lengths (padding at the end), so masking bugs show; in batches of three or
        more the last row is all padding (an empty text), where a masked max or mean must stay finite."""
        import torch

        length = int(info.seq_len or 7)
        ids = torch.randint(2, int(info.vocab_size or 30), (batch_size, length), generator=generator)
        lengths = torch.tensor([0 if batch_size >= 3 and row == batch_size - 1 else max(1, length - row % 3) for row in range(batch_size)])
        mask = torch.arange(length)[None, :] < lengths[:, None]
        return {"ids": ids.masked_fill(~mask, 0), "mask": mask}

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: Any) -> dict[str, list[Any]]:
        return {c: [" ".join(rng.choice(_WORDS, size=int(rng.integers(2, 9)))) for _ in range(n_rows)] for c in info.columns}
