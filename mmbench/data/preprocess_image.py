"""Default image preprocessing: decode (Pillow), resize, standardise per channel.

Decoded, resized ``uint8`` arrays are cached on disk (:mod:`mmbench.data.cache`) when the
column holds file paths, so only the first process decodes a folder of JPEGs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmbench.data.cache import decode_column, decode_each
from mmbench.data.media import column_items, read_image, resize_image, to_channels
from mmbench.data.preprocess import Preprocessor, Tensors
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
        self._memo: dict[str, np.ndarray] = {}

    def options(self) -> dict[str, object]:
        stats = (tuple(self.mean.tolist()), tuple(self.std.tolist())) if self._fixed_stats else "fitted"
        return {"size": self.size, "max_side": self.max_side, "channels": self.channels, "stats": stats}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        (column,) = self.info.columns
        if self.channels is None or self.size is None:
            channels, size = probe_images(train, column, self.max_side)
            self.channels = self.channels or channels
            self.size = self.size or size
        decoded = self._decoded(train).astype(np.float32) / 255.0
        if not self._fixed_stats:
            axes = (0, 1, 2)
            self.mean = decoded.mean(axis=axes).astype(np.float32)
            self.std = np.maximum(decoded.std(axis=axes), 1e-6).astype(np.float32)
        return self.info.with_updates(channels=self.channels, image_size=tuple(self.size))

    def transform(self, split: datasets.Dataset) -> Tensors:
        if self.size is None or self.mean is None:
            raise RuntimeError("ImagePreprocessor.transform called before fit")
        pixels = (self._decoded(split).astype(np.float32) / 255.0 - self.mean) / self.std
        return {"pixels": torch.from_numpy(np.ascontiguousarray(pixels.transpose(0, 3, 1, 2)))}

    def _decoded(self, split: datasets.Dataset) -> np.ndarray:
        """(N, H, W, C) at the fitted size and channels, 0..255 (uint8 from files, float from arrays)."""
        (column,) = self.info.columns
        memo_key = f"{split._fingerprint}:{column}"
        if memo_key not in self._memo:
            settings = f"image|{self.size}|{self.channels}"
            self._memo[memo_key] = decode_column(split, column, settings, lambda items: {"x": self._decode(items, column)})["x"]
        return self._memo[memo_key]

    def _decode(self, items: list[Any], column: str) -> np.ndarray:
        assert self.size is not None and self.channels is not None
        size, channels = self.size, self.channels

        def one(item: Any) -> np.ndarray:
            return resize_image(to_channels(read_image(item), channels), size)

        arrays = decode_each(items, column, one)
        if not arrays:
            return np.zeros((0, *size, channels), dtype=np.uint8)
        dtype = np.uint8 if all(a.dtype == np.uint8 for a in arrays) else np.float32
        try:
            return np.stack([a.astype(dtype, copy=False) for a in arrays])
        except ValueError as error:  # pragma: no cover - resize makes shapes equal
            raise DataError(f"column '{column}': images of unequal shapes after resizing ({error})") from None
