"""Guessing a column's modality kind from its values, where it is obvious.

The task file's ``modalities:`` mapping overrides every guess; the guess only spares users the
obvious cases. Besides the modality kinds, two tabular sub-kinds are returned: ``numeric`` and
``categorical`` (both end up in the ``tabular`` modality), and ``None`` for an identifier
column (every value distinct, no spaces) that carries no signal and is left out.

Rules, in order:

* numbers and booleans -> ``numeric``;
* lists of numbers (or of lists of numbers) -> ``embedding``;
* ``{"array", "sampling_rate"}`` structs -> ``audio``; ``{"bytes", "path"}`` structs -> ``image``;
* strings, most of them ending in an image / audio / video extension -> that kind; most of them
  naming an existing folder -> ``video`` (a folder of frames);
* strings averaging three words or more -> ``text``;
* more than 20 strings, all distinct and space-free -> ``None`` (an identifier);
* strings with few distinct values (at most 20, or 5 % of the rows) -> ``categorical``;
* other strings -> ``text``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING


if TYPE_CHECKING:
    import datasets

#: kinds :func:`infer_kind` may return besides the modality kinds; both mean ``tabular``
TABULAR_SUBKINDS: tuple[str, ...] = ("numeric", "categorical")
_SAMPLE = 200
_MAJORITY = 0.8


def infer_kind(split: datasets.Dataset, column: str, *, base_dir: Path | None = None) -> str | None:
    """The kind of ``column`` as guessed from its Arrow type and values.

    Args:
        split: rows holding the column.
        column: the column to type.
        base_dir: folder relative paths are relative to (to recognise frame folders).

    Returns:
        A modality kind, ``numeric`` / ``categorical``, or ``None`` for an identifier.
    """
    import pyarrow as pa

    feature = split.features.get(column)
    feature_type = type(feature).__name__
    if feature_type in ("Image", "Audio", "Video"):
        return feature_type.lower()
    kind = split.data.schema.field(column).type
    if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind):
        return "numeric"
    if pa.types.is_struct(kind):
        names = {kind.field(i).name for i in range(kind.num_fields)}
        if {"array", "sampling_rate"} <= names:
            return "audio"
        if names & {"bytes", "path"}:
            return "image"
        return None
    if _is_list(kind):
        inner = kind.value_type
        if _is_list(inner):
            inner = inner.value_type
        return "embedding" if pa.types.is_integer(inner) or pa.types.is_floating(inner) else None
    values = [str(v) for v in split[column] if v is not None and v == v]
    return _string_kind(values, base_dir)


def _string_kind(values: list[str], base_dir: Path | None) -> str | None:
    if not values:
        return "text"
    from mmbench.registry import get_registry

    sample = values[:_SAMPLE]
    registry = get_registry()
    file_kinds = [registry.kind_of_file(v) for v in sample]
    for kind in sorted({k for k in file_kinds if k is not None}):
        if file_kinds.count(kind) / len(sample) >= _MAJORITY:
            return kind
    if _share(sample[:20], lambda v: _is_dir(v, base_dir)) >= _MAJORITY:
        return "video"
    if sum(len(v.split()) for v in sample) / len(sample) >= 3:
        return "text"
    distinct = len(set(values))
    if distinct == len(values) > 20 and not any(" " in v for v in sample):
        return None
    if distinct <= max(20, 0.05 * len(values)):
        return "categorical"
    return "text"


def _share(values: list[str], test: object) -> float:
    return sum(1 for v in values if test(v)) / len(values)  # type: ignore[operator]


def _is_dir(value: str, base_dir: Path | None) -> bool:
    path = Path(value)
    if not path.is_absolute() and base_dir is not None:
        path = base_dir / path
    try:
        return path.is_dir()
    except OSError:
        return False


def _is_list(kind: object) -> bool:
    import pyarrow as pa

    return pa.types.is_list(kind) or pa.types.is_large_list(kind) or pa.types.is_fixed_size_list(kind)
