"""The default preprocessing of the example plugin's ``timeseries`` kind: pad or cut, standardise per channel."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from mmbench import DataError, ModalityInfo, Preprocessor, Tensors

if TYPE_CHECKING:
    import datasets


class SeriesPreprocessor(Preprocessor):
    """A series column -> ``values`` ``(B, T, C)`` float32 standardised per channel, ``mask`` ``(B, T)`` bool.

    Series are cut or padded (with zeros, ``mask`` false) to ``max_steps`` or, by default, to the
    longest training series. Channel means and deviations are fitted on the training split.

    Args:
        info: the timeseries modality (one column).
        max_steps: the fixed length; default: the longest training series.
    """

    def __init__(self, info: ModalityInfo, *, max_steps: int | None = None) -> None:
        super().__init__(info)
        if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
            raise DataError(f"modality '{info.name}': max_steps must be a positive integer, got {max_steps!r}")
        self.max_steps = max_steps
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def options(self) -> dict[str, object]:
        return {"max_steps": self.max_steps}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        series = self._series(train)
        steps = self.max_steps or max(len(s) for s in series)
        stacked = np.concatenate(series)
        self.mean, self.std = stacked.mean(axis=0), stacked.std(axis=0) + 1e-6
        self.info = self.info.with_updates(seq_len=int(steps), dim=int(stacked.shape[1]))
        return self.info

    def transform(self, split: datasets.Dataset) -> Tensors:
        assert self.mean is not None and self.std is not None, "fit before transform"
        steps, channels = int(self.info.seq_len), int(self.info.dim)
        series = self._series(split)
        values = np.zeros((len(series), steps, channels), dtype=np.float32)
        mask = np.zeros((len(series), steps), dtype=bool)
        for row, one in enumerate(series):
            if one.shape[1] != channels:
                raise DataError(f"column '{self.info.columns[0]}', row {row}: {one.shape[1]} channels, train has {channels}")
            length = min(len(one), steps)
            values[row, :length] = (one[:length] - self.mean) / self.std
            mask[row, :length] = True
        return {"values": torch.from_numpy(values), "mask": torch.from_numpy(mask)}

    def _series(self, split: datasets.Dataset) -> list[np.ndarray]:
        (column,) = self.info.columns
        series = []
        for row, value in enumerate(split[column]):
            array = np.asarray(value, dtype=np.float32)
            array = array[:, None] if array.ndim == 1 else array
            if array.ndim != 2 or len(array) == 0 or not np.isfinite(array).all():
                raise DataError(f"column '{column}', row {row}: a series must be a non-empty list of finite numbers or of equal-length lists")
            series.append(array)
        return series
