"""The ``text`` modality kind: strings, one or more columns joined into one token sequence."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mmbench import Degradation, ModalityInfo, ModalityKind, Preprocessor, Rngs, replace_column

if TYPE_CHECKING:
    import datasets
    import numpy as np

_WORDS = "the a cat dog sat on mat red blue big small ran fast slow and".split()


def token_dropout(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """``data.degrade``'s ``token_dropout``: each word dropped with probability ``p`` (a missing text stays missing)."""
    (column,) = columns
    return {name: _dropped(split, column, op["p"], rngs(name)) for name, split in splits.items()}


def _dropped(split: datasets.Dataset, column: str, p: float, rng: np.random.Generator) -> datasets.Dataset:
    kept = []
    for text in split[column]:
        if text is None:
            kept.append(None)
            continue
        words = str(text).split()
        keep = rng.random(len(words)) >= p
        kept.append(" ".join(w for w, k in zip(words, keep) if k))
    return replace_column(split, column, kept)


class TextKind(ModalityKind):
    """Text columns -> ``ids`` ``(B, T)`` int64 (0 = padding) and ``mask`` ``(B, T)`` bool."""

    name = "text"
    description = "strings; word vocabulary fitted on train -> ids + mask"
    info_fields = ("vocab_size", "seq_len")
    example_sizes = {"vocab_size": 30, "seq_len": 7}
    degradations = {"token_dropout": Degradation(token_dropout, {"p": (None, 0.0, 1.0)})}

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
