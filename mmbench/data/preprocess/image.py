"""Default image preprocessing: decode (Pillow), resize, standardise per channel.

Decoded, resized ``uint8`` arrays are cached on disk (:mod:`mmbench.data.storage.media_cache`) when the
column holds file paths, so only the first process decodes a folder of JPEGs. Images are decoded
a chunk of rows at a time (statistics included), so no step holds a whole split's decoded pixels.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmbench.data.storage.media_cache import decode_chunks, decode_each
from mmbench.data.media import column_items, read_image, resize_image, to_channels
from mmbench.data.preprocess.base import Preprocessor, Tensors
from mmbench.data.schema import ModalityInfo
from mmbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

_PROBE = 32  # training images looked at to choose channels and size


def probe_images(split: datasets.Dataset, column: str, max_side: int) -> tuple[int, tuple[int, int]]:
    """Channels (1 if every probed image is grey, else 3) and a size: the median shape of the
    first images, scaled down so its longer side is at most ``max_side``."""
    items = column_items(split.select(range(min(_PROBE, split.num_rows))), column)
    arrays = decode_each(items, column, read_image)
    channels = 1 if all(a.shape[2] == 1 for a in arrays) else 3
    heights, widths = zip(*(a.shape[:2] for a in arrays))
    height, width = int(np.median(heights)), int(np.median(widths))
    scale = min(1.0, max_side / max(height, width))
    return channels, (max(1, round(height * scale)), max(1, round(width * scale)))


class ImagePreprocessor(Preprocessor):
    """An image column -> ``pixels`` float (B, C, H, W), standardised with training statistics.

    Args:
        info: the image modality (one column of paths, encoded bytes or arrays).
        size: ``(height, width)`` or one int for squares; default: probed from train (see
            :func:`probe_images`).
        max_side: cap on the probed size's longer side.
        channels: 1 or 3; default: 1 when every probed training image is grey.
        mean: per-channel mean on the 0-1 scale (e.g. ImageNet's); default: fitted on train.
        std: per-channel standard deviation; default: fitted on train.
    """

    def __init__(
        self,
        info: ModalityInfo,
        *,
        size: int | tuple[int, int] | None = None,
        max_side: int = 64,
        channels: int | None = None,
        mean: tuple[float, ...] | None = None,
        std: tuple[float, ...] | None = None,
    ) -> None:
        super().__init__(info)
        if channels not in (None, 1, 3):
            raise ConfigError(f"image preprocessing of '{info.name}': channels must be 1 or 3, got {channels}")
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
        self.max_side, self.channels = max_side, channels
        self.mean = None if mean is None else np.asarray(mean, dtype=np.float32)
        self.std = None if std is None else np.asarray(std, dtype=np.float32)
        self._fixed_stats = mean is not None and std is not None

    def options(self) -> dict[str, object]:
        stats = (tuple(self.mean.tolist()), tuple(self.std.tolist())) if self._fixed_stats else "fitted"
        return {"size": self.size, "max_side": self.max_side, "channels": self.channels, "stats": stats}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        (column,) = self.info.columns
        if self.channels is None or self.size is None:
            channels, size = probe_images(train, column, self.max_side)
            self.channels = self.channels or channels
            self.size = self.size or size
        if not self._fixed_stats:
            self.mean, self.std = ChannelStats.of(arrays["x"] for _, arrays in self._chunks(train))
        return self.info.with_updates(channels=self.channels, image_size=tuple(self.size))

    def transform(self, split: datasets.Dataset) -> Tensors:
        if self.size is None or self.channels is None or self.mean is None or self.std is None:
            raise RuntimeError("ImagePreprocessor.transform called before fit")
        pixels = torch.empty((split.num_rows, self.channels, *self.size), dtype=torch.float32)
        for rows, arrays in self._chunks(split):
            standardised = (arrays["x"].astype(np.float32) / 255.0 - self.mean) / self.std
            pixels[rows] = torch.from_numpy(standardised.transpose(0, 3, 1, 2))
        return {"pixels": pixels}

    def _chunks(self, split: datasets.Dataset) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """(N, H, W, C) at the fitted size and channels, 0..255 (uint8 from files, float from arrays), by chunk."""
        (column,) = self.info.columns
        return decode_chunks(split, column, f"image|{self.size}|{self.channels}",
                             lambda items, first_row: {"x": self._decode(items, column, first_row)})

    def _decode(self, items: list[Any], column: str, first_row: int) -> np.ndarray:
        assert self.size is not None and self.channels is not None
        size, channels = self.size, self.channels

        def one(item: Any) -> np.ndarray:
            return resize_image(to_channels(read_image(item), channels), size)

        arrays = decode_each(items, column, one, first_row=first_row)
        if not arrays:
            return np.zeros((0, *size, channels), dtype=np.uint8)
        dtype = np.uint8 if all(a.dtype == np.uint8 for a in arrays) else np.float32
        try:
            return np.stack([a.astype(dtype, copy=False) for a in arrays])
        except ValueError as error:  # pragma: no cover - resize makes shapes equal
            raise DataError(f"column '{column}': images of unequal shapes after resizing ({error})") from None


class ChannelStats:
    """Per-channel mean and standard deviation on the 0-1 scale, accumulated chunk by chunk
    (float64 sums), so fitting never holds a float copy of the training pixels."""

    #: values converted to float at once
    _BLOCK = 2**22

    def __init__(self) -> None:
        self.count = 0
        self.total: np.ndarray | float = 0.0
        self.squares: np.ndarray | float = 0.0

    @classmethod
    def of(cls, chunks: Iterable[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` over chunks of pixels ``(..., C)`` in 0..255."""
        stats = cls()
        for values in chunks:
            stats.add(values)
        return stats.mean_std()

    def add(self, values: np.ndarray) -> None:
        """Add pixels ``(..., C)`` in 0..255."""
        flat = values.reshape(-1, values.shape[-1])
        step = max(1, self._BLOCK // flat.shape[1])
        for start in range(0, flat.shape[0], step):
            block = flat[start : start + step].astype(np.float64) / 255.0
            self.count += block.shape[0]
            self.total = self.total + block.sum(axis=0)
            self.squares = self.squares + np.square(block).sum(axis=0)

    def mean_std(self) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` as float32; std at least 1e-6 (a constant channel stays finite)."""
        mean = np.asarray(self.total) / max(1, self.count)
        variance = np.maximum(np.asarray(self.squares) / max(1, self.count) - mean**2, 0.0)
        return mean.astype(np.float32), np.maximum(np.sqrt(variance), 1e-6).astype(np.float32)
