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
    import pyarrow as pa

#: kinds :func:`infer_kind` may return besides the modality kinds; both mean ``tabular``
TABULAR_SUBKINDS: tuple[str, ...] = ("numeric", "categorical")
_SAMPLE = 200
_MAJORITY = 0.8
#: what :func:`_type_kind` says of a column whose type leaves the kind to its values (strings and others)
_BY_VALUES = "by values"


def infer_kind(split: datasets.Dataset, column: str, *, base_dir: Path | None = None) -> str | None:
    """The kind of ``column`` as guessed from its Arrow type and values (:func:`infer_kinds` for several).

    Args:
        split: rows holding the column.
        column: the column to type.
        base_dir: folder relative paths are relative to (to recognise frame folders).

    Returns:
        A modality kind, ``numeric`` / ``categorical``, or ``None`` for an identifier.
    """
    return infer_kinds(split, [column], base_dir=base_dir)[column]


def infer_kinds(split: datasets.Dataset, columns: list[str], *, base_dir: Path | None = None) -> dict[str, str | None]:
    """Column -> :func:`infer_kind` of each of ``columns``, reading the split once.

    Numbers, lists and structs are typed from the Arrow schema alone; the features are copied
    once and only for struct columns, and the values read once and only for the other columns:
    a read per column name copies every column's feature, which made 2,000 columns take minutes.
    """
    import pyarrow as pa

    schema = split.data.schema
    types = {column: schema.field(column).type for column in columns}
    features = split.features if any(pa.types.is_struct(kind) for kind in types.values()) else {}
    decided = {column: _type_kind(kind, features.get(column)) for column, kind in types.items()}
    by_values = [column for column, kind in decided.items() if kind == _BY_VALUES]
    table = read_columns(split, by_values) if by_values else None
    for column in by_values:
        values = [str(v) for v in table.column(column).to_pylist() if v is not None and v == v]  # type: ignore[union-attr]
        decided[column] = _string_kind(values, base_dir)
    return decided


def read_columns(split: datasets.Dataset, columns: list[str]) -> pa.Table:
    """``columns`` of every row of ``split`` (its indices mapping applied) as one Arrow table.

    Cheap per call without an indices mapping, and one read for many columns with one:
    ``split[column]`` copies the features of every column and ``split.with_format("arrow")[column]``
    drops every other column, so a loop of either over the columns of a wide table is quadratic.
    """
    if split._indices is None:  # no indices mapping: the backing table's rows are the split's rows
        return split.data.table.select(list(columns))
    return split.select_columns(list(columns)).with_format("arrow")[:]


def _type_kind(kind: pa.DataType, feature: object) -> str | None:
    """The kind the Arrow type (and for structs the ``datasets`` feature) decides, or
    :data:`_BY_VALUES` when only the values can tell."""
    import pyarrow as pa

    if type(feature).__name__ in ("Image", "Audio", "Video"):
        return type(feature).__name__.lower()
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
    return _BY_VALUES


def _string_kind(values: list[str], base_dir: Path | None) -> str | None:
    if not values:
        return "text"
    from mmbench.registry import get_registry

    sample = values[:_SAMPLE]
    registry = get_registry()
    of_value = {v: registry.kind_of_file(v) for v in set(sample)}  # once per distinct value (a category repeats)
    file_kinds = [of_value[v] for v in sample]
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
