"""Preprocessing that belongs to the data: raw column values -> tensors, done once.

A :class:`Preprocessor` is fitted on the training split (vocabulary, normalisation statistics)
and then turns every split into a dict of tensors. Its :attr:`~Preprocessor.key` names
everything that changes its output, so the tensors are cached per (data set, modality, key)
and reused by every trial that picks an encoder with the same preprocessing.

Each modality kind declares a default preprocessor (:func:`default_preprocessor`); an encoder that
needs another one (a pretrained tokenizer, a fixed sample rate) returns it from
:meth:`mmbench.Encoder.preprocessor`. The base class itself lives in
:mod:`mmbench.data.preprocess.contract` (re-exported here), away from the registry lookup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mmbench.data.preprocess.contract import Preprocessor, Tensors
from mmbench.data.schema import ModalityInfo
from mmbench.errors import DataError

if TYPE_CHECKING:
    import datasets

__all__ = ["EmbeddingPreprocessor", "Preprocessor", "Tensors", "default_preprocessor"]


class EmbeddingPreprocessor(Preprocessor):
    """Precomputed vectors ``(D,)`` or sequences ``(T, D)`` from one list-valued column -> ``values``."""

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        values = self._array(train)
        if values.ndim == 2:
            return self.info.with_updates(dim=int(values.shape[1]), seq_len=None)
        return self.info.with_updates(dim=int(values.shape[2]), seq_len=int(values.shape[1]))

    def transform(self, split: datasets.Dataset) -> Tensors:
        return {"values": torch.from_numpy(self._array(split))}

    def _array(self, split: datasets.Dataset) -> np.ndarray:
        (column,) = self.info.columns
        try:
            values = np.asarray(split.with_format("numpy")[column], dtype=np.float32)
        except (ValueError, TypeError) as error:
            raise DataError(f"column '{column}': embedding rows must all have the same shape ({error})") from None
        if values.ndim not in (2, 3):
            raise DataError(f"column '{column}': an embedding must be a vector or a sequence of vectors, got shape {values.shape[1:]}")
        if not np.isfinite(values).all():
            row = int(np.argwhere(~np.isfinite(values))[0][0])
            raise DataError(f"column '{column}', row {row}: embedding holds NaN or infinity")
        return values


def default_preprocessor(info: ModalityInfo) -> Preprocessor:
    """The preprocessing a modality gets when its encoder asks for none in particular: the one
    its registered :class:`~mmbench.ModalityKind` declares."""
    from mmbench.registry import get_registry

    return get_registry().get_kind(info.kind).default_preprocessor(info)
