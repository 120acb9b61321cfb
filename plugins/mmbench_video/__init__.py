"""Built-in video encoder: a per-frame CNN followed by temporal pooling (mean, attention or GRU)."""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_video.kind import VideoKind

    return [VideoKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_video.frames import FramesVideo

    return [FramesVideo]
