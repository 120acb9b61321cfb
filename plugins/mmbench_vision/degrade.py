"""The image kind's ``data.degrade`` operations: ``pca``, ``blur`` and ``occlude``.

Degrading decodes the column (through the on-disk cache when it holds file paths) and
replaces it with decoded content: ``float32`` ``(H, W, C)`` arrays on the 0-255 scale, at the
training images' median size, which the default preprocessor reads like files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench import Rngs, decode_column, decode_each, probe_images, read_image, replace_column, resize_image, to_channels

if TYPE_CHECKING:
    import datasets


def pca(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """Reconstruct every image from the fewest leading principal components (fitted on train)
    that keep ``1 - remove`` of the training variance."""
    (column,) = columns
    return _replaced(splits, column, _pca(_decoded(splits, column), float(op["remove"]), rngs("train")))


def blur(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """A Gaussian blur of ``sigma`` pixels."""
    (column,) = columns
    return _replaced(splits, column, {name: _blur(x, float(op["sigma"])) for name, x in _decoded(splits, column).items()})


def occlude(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """A square hiding ``fraction`` of each image's area, at a random place, filled with 0."""
    (column,) = columns
    arrays = _decoded(splits, column)
    return _replaced(splits, column, {name: _occlude(x, float(op["fraction"]), rngs(name)) for name, x in arrays.items()})


def _decoded(splits: Mapping[str, datasets.Dataset], column: str) -> dict[str, np.ndarray]:
    """Split -> ``(N, H, W, C)`` float32 at the training images' median size and channels."""
    channels, size = probe_images(splits["train"], column, max_side=10**6)
    return {name: _images(split, column, size, channels) for name, split in splits.items()}


def _replaced(
    splits: Mapping[str, datasets.Dataset], column: str, arrays: Mapping[str, np.ndarray]
) -> dict[str, datasets.Dataset]:
    return {name: replace_column(split, column, _image_array(np.clip(arrays[name], 0, 255))) for name, split in splits.items()}


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
