"""Default video preprocessing: frames sampled evenly, resized, standardised per channel.

A video cell is a file decoded with PyAV (FFmpeg bundled in its wheel: ``pip install
'mmbench[video]'``), a folder of frame images, or an ``(F, H, W, C)`` array.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmbench import (
    ChannelStats,
    ConfigError,
    ModalityInfo,
    Preprocessor,
    Tensors,
    column_items,
    decode_chunks,
    decode_each,
    read_video,
    resize_image,
    to_channels,
)

if TYPE_CHECKING:
    import datasets


class VideoPreprocessor(Preprocessor):
    """A video column -> ``frames`` float (B, F, C, H, W), standardised with training statistics.

    Args:
        info: the video modality.
        n_frames: frames sampled evenly over each clip (repeated when a clip is shorter).
        size: ``(height, width)`` or an int; default: the first training clip's frame size,
            scaled so the longer side is at most ``max_side``.
        max_side: cap on the default size.
    """

    def __init__(
        self, info: ModalityInfo, *, n_frames: int = 8, size: int | tuple[int, int] | None = None, max_side: int = 64
    ) -> None:
        super().__init__(info)
        if n_frames < 1:
            raise ConfigError(f"video preprocessing of '{info.name}': n_frames must be >= 1, got {n_frames}")
        self.n_frames, self.max_side = n_frames, max_side
        self.size = (size, size) if isinstance(size, int) else (tuple(size) if size else None)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def options(self) -> dict[str, object]:
        return {"n_frames": self.n_frames, "size": self.size, "max_side": self.max_side}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        (column,) = self.info.columns
        if self.size is None:
            first = decode_each(column_items(train.select(range(1)), column), column, lambda item: read_video(item, 1))[0][0]
            height, width = first.shape[:2]
            scale = min(1.0, self.max_side / max(height, width))
            self.size = (max(1, round(height * scale)), max(1, round(width * scale)))
        self.mean, self.std = ChannelStats.of(arrays["x"] for _, arrays in self._chunks(train))
        return self.info.with_updates(n_frames=self.n_frames, channels=3, image_size=tuple(self.size))

    def transform(self, split: datasets.Dataset) -> Tensors:
        if self.size is None or self.mean is None or self.std is None:
            raise RuntimeError("VideoPreprocessor.transform called before fit")
        frames = torch.empty((split.num_rows, self.n_frames, 3, *self.size), dtype=torch.float32)
        for rows, arrays in self._chunks(split):
            standardised = (arrays["x"].astype(np.float32) / 255.0 - self.mean) / self.std
            frames[rows] = torch.from_numpy(standardised.transpose(0, 1, 4, 2, 3))
        return {"frames": frames}

    def _chunks(self, split: datasets.Dataset) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """(N, F, H, W, 3) in 0..255, a chunk of rows at a time."""
        (column,) = self.info.columns
        size, n_frames = self.size, self.n_frames
        assert size is not None

        def one(item: Any) -> np.ndarray:
            return np.stack([resize_image(to_channels(_hwc(f), 3), size) for f in read_video(item, n_frames)])

        def compute(items: list[Any], first_row: int) -> dict[str, np.ndarray]:
            clips = decode_each(items, column, one, first_row=first_row)
            if not clips:
                return {"x": np.zeros((0, n_frames, *size, 3), dtype=np.uint8)}
            return {"x": np.stack(clips)}

        return decode_chunks(split, column, f"video|{n_frames}|{size}", compute)


def _hwc(frame: np.ndarray) -> np.ndarray:
    return frame[:, :, None] if frame.ndim == 2 else frame
