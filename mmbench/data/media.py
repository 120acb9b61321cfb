"""Reading media cells: image, audio and video values as numpy arrays, without system FFmpeg.

A media column holds, per row, either a path to a file (or, for video, a folder of frames) or
the decoded content itself (an array, or for audio a ``{"array", "sampling_rate"}`` mapping as
Hugging Face ``datasets`` decodes it). Degradations and in-memory sources (MNIST idx files)
produce the second form; the default preprocessors accept both.

Decoders: images with Pillow, audio with ``soundfile`` (libsndfile is bundled in its wheel),
video with PyAV (FFmpeg bundled in its wheel) or a folder of frame images.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench.errors import MediaError, one_line

if TYPE_CHECKING:
    import datasets

#: the frame files of a video stored as a folder of images (which extensions mark a column's
#: kind is each registered ModalityKind's ``extensions``)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")


def column_items(split: datasets.Dataset, column: str) -> list[Any]:
    """The column's cells as paths (str), arrays or mappings, cheaply.

    Strings come back as ``str``; list-valued cells as numpy arrays; struct cells as dicts
    whose list fields are numpy arrays.
    """
    import pyarrow as pa

    chunked = split.with_format("arrow")[column]
    array = chunked.combine_chunks() if isinstance(chunked, pa.ChunkedArray) else chunked
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        return array.to_pylist()
    if pa.types.is_struct(array.type):
        fields = {array.type.field(i).name: _as_items(array.field(i)) for i in range(array.type.num_fields)}
        return [{name: values[row] for name, values in fields.items()} for row in range(len(array))]
    if pa.types.is_fixed_size_list(array.type) and array.null_count == 0:
        return list(_fixed_shape_array(array))
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type) or pa.types.is_fixed_size_list(array.type):
        values = split.with_format("numpy")[column]
        return [np.asarray(value) for value in values]
    return array.to_pylist()


def _fixed_shape_array(array: Any) -> np.ndarray:
    """Nested fixed-size lists -> one ``(N, *shape)`` array without a per-row conversion."""
    import pyarrow as pa

    shape = [len(array)]
    while pa.types.is_fixed_size_list(array.type):
        shape.append(array.type.list_size)
        array = array.flatten()
    return array.to_numpy(zero_copy_only=False).reshape(shape)


def _as_items(array: Any) -> list[Any]:
    import pyarrow as pa

    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        offsets = array.offsets.to_numpy()
        flat = array.flatten().to_numpy(zero_copy_only=False)
        start = offsets[0]
        return [flat[a - start : b - start] for a, b in zip(offsets[:-1], offsets[1:])]
    return array.to_pylist()


# ---------------------------------------------------------------- images


def read_image(value: Any) -> np.ndarray:
    """An image cell as ``(H, W, C)`` (C = 1, 3) ``uint8`` or ``float32`` in 0..255.

    Raises:
        MediaError: the file is missing or not an image Pillow can decode.
    """
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, str, os.PathLike)):
        from PIL import Image, UnidentifiedImageError

        source = _bytes_io(value) if isinstance(value, bytes) else value
        try:
            with Image.open(source) as image:
                image.load()
                mode = "L" if image.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                array = np.asarray(image.convert(mode))
        except FileNotFoundError:
            raise MediaError(f"image file '{value}' not found") from None
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as error:
            raise MediaError(f"cannot decode image '{value}' ({one_line(error, 200)})") from None
    elif hasattr(value, "convert"):  # a PIL image (datasets' Image feature)
        array = np.asarray(value.convert("L" if value.mode in ("1", "L") else "RGB"))
    else:
        array = np.asarray(value)
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3 or array.shape[2] not in (1, 3, 4):
        raise MediaError(f"an image must be (H, W) or (H, W, C) with C in 1, 3, 4; got shape {array.shape}")
    return _finite(array[:, :, :3], "image")


def resize_image(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W, C)`` to ``size`` = (height, width) with bilinear filtering (identity if equal)."""
    if array.shape[:2] == tuple(size):
        return array
    from PIL import Image

    height, width = size
    if array.dtype == np.uint8:
        mode = "L" if array.shape[2] == 1 else "RGB"
        image = Image.fromarray(array[:, :, 0] if mode == "L" else array, mode=mode)
        out = np.asarray(image.resize((width, height), Image.Resampling.BILINEAR))
        return out[:, :, None] if out.ndim == 2 else out
    channels = [
        np.asarray(
            Image.fromarray(array[:, :, c].astype(np.float32), mode="F").resize((width, height), Image.Resampling.BILINEAR)
        )
        for c in range(array.shape[2])
    ]
    return np.stack(channels, axis=2)


def to_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """Grey -> RGB by repetition, RGB -> grey by luminance."""
    if array.shape[2] == channels:
        return array
    if channels == 3:
        return np.repeat(array, 3, axis=2)
    grey = array.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    return grey[:, :, None]


# ---------------------------------------------------------------- audio


def read_audio(value: Any) -> tuple[np.ndarray, int]:
    """An audio cell as a mono ``float32`` waveform and its sample rate.

    Raises:
        MediaError: the file is missing or not decodable by libsndfile.
    """
    if isinstance(value, dict) and value.get("array") is not None:
        rate = value.get("sampling_rate")
        if rate is None:
            raise MediaError("audio mapping lacks 'sampling_rate'")
        return _finite(_mono(np.asarray(value["array"], dtype=np.float32)), "audio"), int(rate)
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if not isinstance(value, (str, bytes, os.PathLike)):
        raise MediaError(f"an audio cell must be a path or {{'array', 'sampling_rate'}}, got {type(value).__name__}")
    import soundfile

    try:
        wave, rate = soundfile.read(_bytes_io(value) if isinstance(value, bytes) else value, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise MediaError(f"audio file '{value}' not found") from None
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as error:
        if isinstance(value, (str, os.PathLike)) and not Path(value).exists():
            raise MediaError(f"audio file '{value}' not found") from None
        raise MediaError(f"cannot decode audio '{value}' ({one_line(error, 200)})") from None
    return _finite(_mono(wave), "audio"), int(rate)


def _finite(array: np.ndarray, what: str) -> np.ndarray:
    """``array``, after checking a float one holds no NaN or infinity (it would turn a trial's loss into NaN)."""
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        raise MediaError(f"{what} holds NaN or infinity")
    return array


def audio_rate(value: Any) -> int:
    """The sample rate of an audio cell, reading only the file header."""
    if isinstance(value, dict) and value.get("array") is not None:
        return int(value["sampling_rate"])
    if isinstance(value, dict):
        value = value.get("path")
    return int(audio_header(value).samplerate)


def audio_header(path: Any) -> Any:
    """libsndfile's header of an audio file (``samplerate``, ``channels``, ``subtype``...), reading no samples.

    Raises:
        MediaError: the file is missing or its header unreadable.
    """
    import soundfile

    try:
        return soundfile.info(path)
    except Exception as error:  # noqa: BLE001 - libsndfile raises several types
        raise MediaError(f"cannot read audio header of '{path}' ({one_line(error, 200)})") from None


def _mono(wave: np.ndarray) -> np.ndarray:
    return wave.mean(axis=1).astype(np.float32) if wave.ndim == 2 else wave.astype(np.float32)


def resample(wave: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Band-limited (FFT) resampling of a 1-D waveform; no extra dependency."""
    if from_rate == to_rate or wave.size == 0:
        return wave
    n_out = max(1, int(round(wave.size * to_rate / from_rate)))
    spectrum = np.fft.rfft(wave)
    keep = min(spectrum.size, n_out // 2 + 1)
    out = np.fft.irfft(spectrum[:keep], n=n_out) * (n_out / wave.size)
    return out.astype(np.float32)


def crop_or_pad(waves: Sequence[np.ndarray], n_samples: int) -> np.ndarray:
    """``(N, n_samples)``: each clip cut at the end or padded with zeros."""
    out = np.zeros((len(waves), n_samples), dtype=np.float32)
    for row, wave in enumerate(waves):
        length = min(n_samples, wave.size)
        out[row, :length] = wave[:length]
    return out


# ---------------------------------------------------------------- video


def read_video(value: Any, n_frames: int) -> list[np.ndarray]:
    """``n_frames`` frames (``(H, W, 3)`` uint8) sampled evenly from a video file or a frame folder.

    Raises:
        MediaError: missing, empty or undecodable.
    """
    if not isinstance(value, (str, os.PathLike)):
        frames = np.asarray(value)
        if frames.ndim != 4:
            raise MediaError(f"a video array must be (F, H, W, C), got shape {frames.shape}")
        return [frames[i] for i in _even(len(frames), n_frames)]
    path = Path(value)
    if path.is_dir():
        files = frame_files(path)
        if not files:
            raise MediaError(f"frame folder '{path}' holds no image")
        return [to_channels(read_image(str(files[i])), 3) for i in _even(len(files), n_frames)]
    if not path.exists():
        raise MediaError(f"video file '{path}' not found")
    try:
        import av
    except ImportError:
        raise MediaError("video files need PyAV: pip install 'mmbench[video]'") from None
    try:
        with av.open(str(path)) as container:
            decoded = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    except (av.FFmpegError, ValueError, IndexError) as error:
        raise MediaError(f"cannot decode video '{path}' ({one_line(error, 200)})") from None
    if not decoded:
        raise MediaError(f"video '{path}' has no frame")
    return [decoded[i] for i in _even(len(decoded), n_frames)]


def frame_files(folder: str | os.PathLike) -> list[Path]:
    """The frame images of a video stored as a folder, in name order (empty: no frame)."""
    return sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)


def _even(total: int, wanted: int) -> list[int]:
    """``wanted`` indices spread evenly over ``total`` items (repeats when too few)."""
    return [int(i) for i in np.linspace(0, total - 1, wanted).round().astype(int)]


# ---------------------------------------------------------------- validation and hashing


def check_file(kind: str, path: str) -> None:
    """Cheap check that ``path`` can be read as the registered modality kind ``kind``: that kind's
    :meth:`~mmbench.ModalityKind.check_file` (a regular file, and a header its decoder accepts).

    Raises:
        MediaError: the reason, without the row.
        UnknownComponentError: no registered kind is called ``kind``.
    """
    from mmbench.registry import get_registry

    get_registry().get_kind(kind).check_file(path)


def file_digest(path: str) -> str:
    """SHA-1 of a file's bytes, or of a folder's file names and bytes (frame folders)."""
    digest = hashlib.sha1()
    target = Path(path)
    files = sorted(p for p in target.iterdir() if p.is_file()) if target.is_dir() else [target]
    for file in files:
        if target.is_dir():
            digest.update(file.name.encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def file_stamp(paths: Sequence[str]) -> str:
    """A cheap identity of a list of files (path, size, mtime) for on-disk caches."""
    digest = hashlib.sha256()
    for path in paths:
        try:
            stat = os.stat(path)
            digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        except OSError:
            digest.update(f"{path}|missing\n".encode())
    return digest.hexdigest()


def _bytes_io(data: bytes) -> Any:
    import io

    return io.BytesIO(data)
