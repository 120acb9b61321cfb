"""Image and audio degradations (see :mod:`mmbench.data.degrade.base` for the task-file side).

Degrading decodes the column (through the on-disk cache when it holds file paths) and
replaces it with decoded content: images as ``float32`` ``(H, W, C)`` arrays on the 0-255
scale, audio as ``{"array", "sampling_rate"}`` cells. The default preprocessors read both.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench.data.bad_rows import replace_column
from mmbench.data.storage.media_cache import decode_column, decode_each
from mmbench.data.media import read_audio, read_image, resize_image, to_channels
from mmbench.data.pixels import probe_images
from mmbench.errors import ConfigError

if TYPE_CHECKING:
    import datasets

Rngs = Callable[[str], np.random.Generator]


def degrade_images(
    splits: Mapping[str, datasets.Dataset], column: str, op: Mapping[str, Any], rng_for: Rngs
) -> dict[str, datasets.Dataset]:
    """Apply one image operation to ``column`` of every split."""
    channels, size = probe_images(splits["train"], column, max_side=10**6)
    arrays = {name: _images(split, column, size, channels) for name, split in splits.items()}
    if op["op"] == "pca":
        arrays = _pca(arrays, float(op["remove"]), rng_for("train"))
    elif op["op"] == "blur":
        arrays = {name: _blur(x, float(op["sigma"])) for name, x in arrays.items()}
    else:
        arrays = {name: _occlude(x, float(op["fraction"]), rng_for(name)) for name, x in arrays.items()}
    return {name: replace_column(split, column, _image_array(np.clip(arrays[name], 0, 255))) for name, split in splits.items()}


def degrade_audio(
    splits: Mapping[str, datasets.Dataset], column: str, op: Mapping[str, Any], rng_for: Rngs
) -> dict[str, datasets.Dataset]:
    """Apply one audio operation to ``column`` of every split (each clip at its own rate)."""
    out = {}
    for name, split in splits.items():
        waves, rates = _waves(split, column)
        rng = rng_for(name)
        if op["op"] == "noise":
            waves = [_noise(w, float(op["snr_db"]), rng) for w in waves]
        else:
            waves = [_bandlimit(w, r, float(op["low_hz"]), float(op["high_hz"])) for w, r in zip(waves, rates)]
        out[name] = replace_column(split, column, _audio_array(waves, rates))
    return out


# ---------------------------------------------------------------- images


def _images(split: datasets.Dataset, column: str, size: tuple[int, int], channels: int) -> np.ndarray:
    def compute(items: list[Any]) -> dict[str, np.ndarray]:
        def one(item: Any) -> np.ndarray:
            return resize_image(to_channels(read_image(item), channels).astype(np.float32), size)

        return {"x": np.stack(decode_each(items, column, one)).astype(np.float32)}

    return decode_column(split, column, f"degrade-image|{size}|{channels}", compute)["x"]


def _pca(arrays: dict[str, np.ndarray], remove: float, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Reconstruct from the leading components that keep ``1 - remove`` of the training variance."""
    train = arrays["train"].reshape(len(arrays["train"]), -1).astype(np.float64)
    if train.shape[0] > 5000:  # the components of a seeded subset are plenty and keep the SVD small
        train = train[rng.choice(train.shape[0], 5000, replace=False)]
    mean = train.mean(axis=0)
    _, singular, components = np.linalg.svd(train - mean, full_matrices=False)
    energy = np.cumsum(singular**2) / max(float(np.sum(singular**2)), 1e-12)
    keep = int(np.searchsorted(energy, 1.0 - remove - 1e-12) + 1)
    basis = components[:keep]
    out = {}
    for name, x in arrays.items():
        flat = x.reshape(len(x), -1).astype(np.float64) - mean
        out[name] = ((flat @ basis.T) @ basis + mean).reshape(x.shape).astype(np.float32)
    return out


def _blur(x: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur over height and width of ``(N, H, W, C)``, reflecting at edges."""
    if sigma <= 0:
        return x
    radius = max(1, int(round(3 * sigma)))
    kernel = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    kernel /= kernel.sum()
    for axis in (1, 2):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(x, pad, mode="reflect" if x.shape[axis] > radius else "edge")
        length = x.shape[axis]
        x = sum(w * np.take(padded, np.arange(i, i + length), axis=axis) for i, w in enumerate(kernel))
    return x.astype(np.float32)


def _occlude(x: np.ndarray, fraction: float, rng: np.random.Generator) -> np.ndarray:
    """A square hiding ``fraction`` of each image's area, at a random place, set to 0."""
    x = x.copy()
    n, height, width = x.shape[:3]
    side_h, side_w = int(round(height * fraction**0.5)), int(round(width * fraction**0.5))
    tops = rng.integers(0, height - side_h + 1, size=n)
    lefts = rng.integers(0, width - side_w + 1, size=n)
    for i in range(n):
        x[i, tops[i] : tops[i] + side_h, lefts[i] : lefts[i] + side_w] = 0
    return x


def _image_array(x: np.ndarray) -> Any:
    """(N, H, W, C) as a nested fixed-size list Arrow array (no Python lists in between)."""
    import pyarrow as pa

    n, height, width, channels = x.shape
    flat = pa.array(np.ascontiguousarray(x, dtype=np.float32).reshape(-1))
    pixels = pa.FixedSizeListArray.from_arrays(flat, channels)
    rows = pa.FixedSizeListArray.from_arrays(pixels, width)
    return pa.FixedSizeListArray.from_arrays(rows, height)


# ---------------------------------------------------------------- audio


def _waves(split: datasets.Dataset, column: str) -> tuple[list[np.ndarray], list[int]]:
    def compute(items: list[Any]) -> dict[str, np.ndarray]:
        decoded = decode_each(items, column, read_audio)
        waves = [w for w, _ in decoded]
        offsets = np.concatenate([[0], np.cumsum([w.size for w in waves])]).astype(np.int64)
        values = np.concatenate(waves) if waves else np.zeros(0, np.float32)
        return {
            "values": values.astype(np.float32),
            "offsets": offsets,
            "rates": np.array([r for _, r in decoded], dtype=np.int64),
        }

    arrays = decode_column(split, column, "degrade-audio|native", compute)
    offsets = arrays["offsets"]
    waves = [arrays["values"][a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return waves, [int(r) for r in arrays["rates"]]


def _noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(wave.astype(np.float64) ** 2)) if wave.size else 0.0
    scale = np.sqrt(power / 10 ** (snr_db / 10)) if power > 0 else 0.0
    return (wave + scale * rng.standard_normal(wave.size)).astype(np.float32)


def _bandlimit(wave: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    if low_hz >= high_hz:
        raise ConfigError(f"data.degrade: bandlimit needs low_hz < high_hz, got {low_hz} >= {high_hz}")
    spectrum = np.fft.rfft(wave)
    frequencies = np.fft.rfftfreq(wave.size, d=1.0 / rate)
    spectrum[(frequencies < low_hz) | (frequencies > high_hz)] = 0
    return np.fft.irfft(spectrum, n=wave.size).astype(np.float32)


def _audio_array(waves: list[np.ndarray], rates: list[int]) -> Any:
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum([w.size for w in waves])]).astype(np.int32)
    values = pa.array(np.concatenate(waves).astype(np.float32) if waves else np.zeros(0, np.float32))
    arrays = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pa.StructArray.from_arrays([arrays, pa.array(np.asarray(rates, dtype=np.int64))], names=["array", "sampling_rate"])
