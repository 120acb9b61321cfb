"""Image statistics shared by the image and video preprocessors and the image degradations.

Generic machinery the core keeps (and exports from :mod:`mmbench`) so the plugins owning the
``image`` and ``video`` kinds (their preprocessors and the image kind's ``data.degrade``
operations) compute sizes and standardisation one way.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

from mmbench.data.media import column_items, read_image
from mmbench.data.storage.media_cache import decode_each

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
