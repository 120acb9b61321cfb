"""Row-level validation before splitting: labels and media files, error or skip.

Every problem in a row (label missing or of the wrong type, a media file missing or not
decodable) is a one-line :class:`~mmbench.errors.DataError` naming the source file (or split)
and the row, counted from 0 with the header excluded. With the task's ``data.on_bad_rows: skip``
such rows are dropped instead, and the count per reason lands in ``PreparedData.notes`` (logged
on the run): never a silent wrong result.

Relative media paths are resolved here (against ``RawData.base_dir``), so later stages see
absolute paths.
"""

from __future__ import annotations

import math

from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.data.kinds import registered_kind
from mmbench.data.provider import RawData
from mmbench.errors import DataError, MediaError

if TYPE_CHECKING:
    import datasets

    from mmbench.modalities import ModalityKind

ON_BAD_ROWS: tuple[str, ...] = ("error", "skip")


def where(raw: RawData, split: str) -> str:
    """How messages name a split: its source file when the provider gave one."""
    source = getattr(raw, "sources", {}).get(split)
    return str(source) if source else f"split '{split}'"


def base_dir(raw: RawData, split: str) -> Path | None:
    """The folder relative paths of ``split`` resolve against."""
    base = raw.base_dir
    if isinstance(base, Mapping):
        base = base.get(split)
    return Path(base) if base is not None else None


def check_rows(
    raw: RawData, label: str, kinds: Mapping[str, str], *, skip: bool, task_type: str = "classification"
) -> tuple[dict[str, datasets.Dataset], dict[str, Any]]:
    """Validate every row of every split; resolve media paths.

    Args:
        raw: the provider's output.
        label: the label column.
        kinds: column -> kind of the columns in use.
        skip: drop bad rows (counted) instead of raising.
        task_type: ``"regression"`` labels must be finite numbers, class labels names or integers
            (``"multilabel"``: lists, or delimited text, checked only for presence).

    Returns:
        The checked splits and notes (``skipped_rows``, ``skipped_reasons``, ``first_skipped``)
        when rows were skipped.

    Raises:
        DataError: a missing label column, a bad row when not skipping, or an empty split.
    """
    checked: dict[str, datasets.Dataset] = {}
    reasons: Counter[str] = Counter()
    first: str | None = None
    for name, split in raw.splits.items():
        place = where(raw, name)
        if label not in split.column_names:
            raise DataError(f"{place}: label column '{label}' not found; columns: {', '.join(split.column_names)}")
        if split.num_rows == 0:
            raise DataError(f"{place}: split '{name}' is empty")
        bad: dict[int, tuple[str, str]] = {}
        problems = _label_problems(split[label], label, regression=task_type == "regression") if task_type != "multilabel" else [
            (row, f"label '{label}' is missing") for row, value in enumerate(split[label]) if _missing(value) and value != ""]  # "": no label
        for row, reason in problems:
            bad.setdefault(row, (reason, "label"))
        for column, kind in kinds.items():
            registered = registered_kind(kind)
            if registered is not None and registered.is_file_kind() and column in split.column_names:
                split = _resolve_and_check(split, column, registered, base_dir(raw, name), bad)
        if bad:
            row = min(bad)
            message = f"{place}, row {row}: {bad[row][0]}"
            if not skip:
                raise DataError(message + " (set data.on_bad_rows: skip to drop such rows)")
            first = first or message
            reasons.update(category for _, category in bad.values())
            split = split.select(sorted(set(range(split.num_rows)) - set(bad))).flatten_indices()
            if split.num_rows == 0:
                raise DataError(f"{place}: every row is bad (first: {message})")
        checked[name] = split
    notes: dict[str, Any] = {}
    if reasons:
        notes = {"skipped_rows": sum(reasons.values()), "skipped_reasons": dict(sorted(reasons.items())), "first_skipped": first}
    return checked, notes


def _label_problems(values: list[Any], label: str, *, regression: bool = False) -> list[tuple[int, str]]:
    """(row, reason) for labels that are missing or of the wrong type."""
    problems = []
    if regression:
        for row, value in enumerate(values):
            if _missing(value):
                problems.append((row, f"label '{label}' is missing"))
            elif isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                problems.append((row, f"label '{label}' is {value!r:.40}; a regression target is a finite number"))
        return problems
    present = [v for v in values if not _missing(v)]
    integer_like = sum(1 for v in present if _integer_like(v))
    integers_expected = bool(present) and integer_like * 2 >= len(present)
    for row, value in enumerate(values):
        if _missing(value):
            problems.append((row, f"label '{label}' is missing"))
        elif isinstance(value, (list, dict, tuple)):
            problems.append((row, f"label '{label}' is {type(value).__name__} {value!r:.40}; labels are class names or integers"))
        elif isinstance(value, float) and not value.is_integer():
            problems.append((row, f"label '{label}' is the non-integer number {value}; labels are class names or integers"))
        elif integers_expected and not _integer_like(value):
            problems.append((row, f"label '{label}' is {value!r} in a column of integer classes (wrong type)"))
    return problems


def _resolve_and_check(
    split: datasets.Dataset, column: str, kind: type[ModalityKind], base: Path | None, bad: dict[int, tuple[str, str]]
) -> datasets.Dataset:
    """Make relative paths absolute, check each file as the kind does (headers), record bad rows."""
    values = split[column]
    if not any(isinstance(v, str) for v in values):
        return split  # decoded content (arrays), nothing to open
    resolved: list[str | None] = []
    for row, value in enumerate(values):
        if value is None or value is kind.missing_value or value == "":
            bad.setdefault(row, (f"column '{column}' has no {kind.name} file", f"{kind.name} missing"))
            resolved.append(value)
            continue
        path = Path(str(value)).expanduser()
        if not path.is_absolute() and base is not None:
            path = base / path
        resolved.append(str(path))
        if row in bad:
            continue
        try:
            kind.check_file(str(path))
        except MediaError as error:
            category = f"{kind.name} missing" if "not found" in str(error) else f"{kind.name} unreadable"
            bad[row] = (f"column '{column}': {error}", category)
    return replace_column(split, column, resolved)


def replace_column(split: datasets.Dataset, column: str, values: Any) -> datasets.Dataset:
    """``split`` with one column's values replaced (a list or an Arrow array), order kept."""
    import datasets
    import pyarrow as pa
    from datasets.table import InMemoryTable

    table = split.flatten_indices().data.table if split._indices is not None else split.data.table
    array = values if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values)
    table = table.set_column(table.schema.get_field_index(column), column, array)
    return datasets.Dataset(InMemoryTable(table))


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or (isinstance(value, str) and not value.strip())


def _integer_like(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return True
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, str):
        try:
            int(value.strip())
        except ValueError:
            return False
        return True
    return False
