"""On-disk cache of decoded media arrays, so a second ``mmbench search`` process skips decoding.

:class:`~mmbench.data.prepared.PreparedData` already keeps tensors in memory for every trial of
one process. Decoding thousands of WAVs or JPEGs is the slow part of preparing a data set, so
the default media preprocessors also store the decoded arrays as ``.npz`` files keyed by the
decoding settings and the files' paths, sizes and modification times (a changed file changes
the key). The folder is ``$MMBENCH_CACHE`` or the user cache folder (``platformdirs``);
``MMBENCH_CACHE=off`` disables it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import datasets

T = TypeVar("T")

CACHE_VARIABLE = "MMBENCH_CACHE"
_OFF = ("", "0", "off", "false", "no", "none")
#: bump when the decoders change what they produce, so stale entries are not reused
_VERSION = "media-v1"
#: rows decoded (and cached) together
DECODE_ROWS = 1024


def cache_dir() -> Path | None:
    """Where decoded arrays are kept, or ``None`` when caching is off."""
    value = os.environ.get(CACHE_VARIABLE)
    if value is not None:
        return None if value.strip().lower() in _OFF else Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mmbench")) / "arrays"


def cached_arrays(key_parts: Sequence[str], compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Load the arrays stored under ``key_parts``, or compute and store them.

    A failed write (read-only disk, full disk) only costs the cache, never the run.
    """
    folder = cache_dir()
    if folder is None:
        return compute()
    key = hashlib.sha256("\x00".join(key_parts).encode()).hexdigest()[:32]
    path = folder / f"{key}.npz"
    if path.exists():
        try:
            with np.load(path, allow_pickle=False) as stored:
                return {name: stored[name] for name in stored.files}
        except (OSError, ValueError):
            pass  # a corrupt entry is recomputed and overwritten
    arrays = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, suffix=".npz.part")
        with os.fdopen(handle, "wb") as stream:
            np.savez(stream, **arrays)
        os.replace(temporary, path)
    except OSError:
        pass
    return arrays


def decode_column(
    split: datasets.Dataset, column: str, settings: str, compute: Callable[[list[Any]], dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    """Decode one media column with ``compute(cells)``, through the disk cache when cells are file paths.

    Args:
        split: the rows.
        column: the media column.
        settings: everything besides the files that changes the arrays (class name, size, rate...).
        compute: cells -> named arrays.
    """
    from mmbench.data.media import column_items, file_stamp

    items = column_items(split, column)
    if items and all(isinstance(item, str) for item in items):
        return cached_arrays([_VERSION, settings, file_stamp(items)], lambda: compute(items))
    return compute(items)


def decode_chunks(
    split: datasets.Dataset, column: str, settings: str, compute: Callable[[list[Any], int], dict[str, np.ndarray]]
) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
    """:func:`decode_column` over consecutive chunks of :data:`DECODE_ROWS` rows: ``(rows, arrays)``;
    ``compute(cells, first_row)`` gets each chunk's cells and the split row of its first cell.

    A split is never decoded whole, so decoding a data set larger than RAM does not run out of
    memory; each chunk is its own disk-cache entry, so a fit and a later transform of the same
    split (or a spilled transform, :mod:`mmbench.data.storage.spill`, which uses the same chunks) decode once.
    """
    for start in range(0, split.num_rows, DECODE_ROWS):
        stop = min(split.num_rows, start + DECODE_ROWS)
        yield slice(start, stop), decode_column(split.select(range(start, stop)), column, settings, lambda cells, start=start: compute(cells, start))


def decode_each(items: Sequence[Any], column: str, decode: Callable[[Any], T], *, first_row: int = 0) -> list[T]:
    """``decode`` every cell; a failure becomes a :class:`DataError` naming the column, row
    (``first_row`` being the row of ``items[0]``) and file."""
    from mmbench.data.media import MediaError
    from mmbench.errors import DataError

    out = []
    for row, item in enumerate(items, start=first_row):
        try:
            out.append(decode(item))
        except MediaError as error:
            raise DataError(f"column '{column}', row {row}: {error}") from None
    return out
