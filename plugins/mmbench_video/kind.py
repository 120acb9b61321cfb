"""The ``video`` modality kind: video files, folders of frames or frame arrays."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mmbench import MediaError, ModalityInfo, ModalityKind, Preprocessor, frame_files, one_line


class VideoKind(ModalityKind):
    """A video column -> ``frames`` ``(B, F, C, H, W)`` float: evenly sampled, resized, standardised."""

    name = "video"
    description = "video files/frame folders/arrays -> frames (evenly sampled, resized, standardised)"
    info_fields = ("n_frames", "channels", "image_size")
    extensions = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v")
    example_sizes = {"n_frames": 3, "channels": 3, "image_size": (16, 16)}

    @classmethod
    def check_file(cls, path: str) -> None:
        """A folder holding frame images, or a regular file in which PyAV finds a video stream."""
        if os.path.isdir(path):  # os.path: False, not an error, for a name too long to stat
            if not frame_files(path):
                raise MediaError(f"frame folder '{path}' holds no image")
            return
        super().check_file(path)
        try:
            import av
        except ImportError:
            raise MediaError("video files need PyAV: pip install 'mmbench[video]'") from None
        try:
            with av.open(str(Path(path))) as container:
                if not container.streams.video:
                    raise MediaError(f"'{path}' has no video stream")
        except av.FFmpegError as error:
            raise MediaError(f"cannot decode video '{path}' ({one_line(error, 200)})") from None

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        from mmbench_video.preprocess import VideoPreprocessor

        return VideoPreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: Any) -> dict[str, Any]:
        import torch

        shape = (batch_size, info.n_frames or 3, info.channels or 3, *(info.image_size or (16, 16)))
        return {"frames": torch.randn(shape, generator=generator)}

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: Any) -> dict[str, list[Any]]:
        import numpy as np

        return {c: [rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8) for _ in range(n_rows)] for c in info.columns}
