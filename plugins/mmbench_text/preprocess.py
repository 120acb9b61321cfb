"""Default text preprocessing: a word-level vocabulary fitted on the training split.

Every text column of a task forms one ``text`` modality; a row's columns are joined with a
separator token so an encoder can tell ``Name`` from ``Description``. Pretrained text encoders
return their own tokenizer-based preprocessor instead.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmbench import ConfigError, ModalityInfo, Preprocessor, Tensors

if TYPE_CHECKING:
    import datasets

PAD, UNKNOWN = 0, 1
SEPARATOR = "[sep]"
_WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def words(text: object) -> list[str]:
    """Lower-cased words and punctuation marks; ``None`` and NaN give no word."""
    if text is None or (isinstance(text, float) and text != text):
        return []
    return _WORD.findall(str(text).lower())


class TextPreprocessor(Preprocessor):
    """Text columns -> ``ids`` (long, 0 = padding, 1 = unknown) and ``mask`` (bool).

    Args:
        info: the text modality.
        max_vocab: most frequent training words kept (others map to unknown).
        max_len: tokens kept per row; the fitted ``seq_len`` is the smaller of this and the
            95th percentile of training lengths (short texts do not pay for one long outlier).
        min_count: words seen fewer times in train become unknown.
    """

    def __init__(self, info: ModalityInfo, *, max_vocab: int = 20000, max_len: int = 256, min_count: int = 1) -> None:
        super().__init__(info)
        if max_vocab < 1 or max_len < 1 or min_count < 1:
            raise ConfigError(f"text preprocessing of '{info.name}': max_vocab, max_len and min_count must be >= 1")
        self.max_vocab, self.max_len, self.min_count = max_vocab, max_len, min_count
        self.vocab: dict[str, int] = {}
        self.seq_len = max_len

    def options(self) -> dict[str, object]:
        return {"max_vocab": self.max_vocab, "max_len": self.max_len, "min_count": self.min_count}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        rows = self._tokens(train)
        counts = Counter(word for row in rows for word in row)
        common = [word for word, n in counts.most_common(self.max_vocab) if n >= self.min_count]
        self.vocab = {word: index + 2 for index, word in enumerate(common)}
        lengths = np.array([len(row) for row in rows]) if rows else np.zeros(1)
        self.seq_len = int(max(1, min(self.max_len, np.ceil(np.percentile(lengths, 95)))))
        return self.info.with_updates(
            vocab_size=len(self.vocab) + 2, seq_len=self.seq_len, extra={**self.info.extra, "vocab": "word"}
        )

    def transform(self, split: datasets.Dataset) -> Tensors:
        if not self.vocab:
            raise RuntimeError("TextPreprocessor.transform called before fit")
        rows = self._tokens(split)
        ids = np.zeros((len(rows), self.seq_len), dtype=np.int64)
        for index, row in enumerate(rows):
            row_ids = [self.vocab.get(word, UNKNOWN) for word in row[: self.seq_len]]
            ids[index, : len(row_ids)] = row_ids
        ids_tensor = torch.from_numpy(ids)
        mask = ids_tensor != PAD
        mask[:, 0] = True  # an empty text still has one (padding) position to attend to
        return {"ids": ids_tensor, "mask": mask}

    def _tokens(self, split: datasets.Dataset) -> list[list[str]]:
        columns = [split[column] for column in self.info.columns]
        rows: list[list[str]] = []
        for cells in zip(*columns):
            tokens: list[str] = []
            for position, cell in enumerate(cells):
                if position:
                    tokens.append(SEPARATOR)
                tokens.extend(words(cell))
            rows.append(tokens)
        return rows
