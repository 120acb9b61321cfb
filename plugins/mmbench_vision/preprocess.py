"""Default image preprocessing: decode (Pillow), resize, standardise per channel.

Decoded, resized ``uint8`` arrays are cached on disk (mmbench's media cache, :func:`mmbench.decode_chunks`) when the
column holds file paths, so only the first process decodes a folder of JPEGs. Images are decoded
a chunk of rows at a time (statistics included), so no step holds a whole split's decoded pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmbench import (
    ChannelStats,
    ConfigError,
    DataError,
    ModalityInfo,
    Preprocessor,
    Tensors,
    decode_chunks,
    decode_each,
    probe_images,
    read_image,
    resize_image,
    to_channels,
)

if TYPE_CHECKING:
    import datasets

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
