"""From a provider's :class:`RawData` to typed, split, fingerprinted :class:`PreparedData`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from mmbench.data.fingerprint import fingerprint
from mmbench.data.infer import TABULAR_SUBKINDS, infer_kind
from mmbench.data.media import FILE_KINDS
from mmbench.data.provider import SPLITS, RawData
from mmbench.data.schema import MODALITY_KINDS, ModalityInfo, Schema
from mmbench.data.splits import SplitSpec, group_split, stratified_split
from mmbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

    from mmbench.data.prepared import PreparedData

#: kinds whose columns are merged into one modality named after the kind
_MERGED_KINDS = ("text", "tabular")


@dataclass(frozen=True)
class DataSpec:
    """The task file's say over the data: label, modality overrides, splitting.

    Attributes:
        label: the label column.
        modalities: column -> kind, overriding what the provider inferred; ``"ignore"`` drops a column.
        split: how to split unsplit data.
        extra: settings that change the data and so belong in the fingerprint.
        on_bad_rows: ``"error"`` (default) or ``"skip"`` (drop bad rows, counted in the notes).
        degrade: the task's ``data.degrade`` block (:mod:`mmbench.data.degrade.base`).
    """

    label: str
    modalities: Mapping[str, str] = field(default_factory=dict)
    split: SplitSpec = field(default_factory=SplitSpec)
    extra: Mapping[str, Any] = field(default_factory=dict)
    on_bad_rows: str = "error"
    degrade: Mapping[str, Any] = field(default_factory=dict)


def prepare(raw: RawData, spec: DataSpec) -> PreparedData:
    """Split, type and fingerprint a provider's output.

    Raises:
        DataError: the label is missing, a split is empty, or a class appears only outside train.
        ConfigError: a modality override names an unknown column or kind.
    """
    from mmbench.data.bad_rows import check_rows
    from mmbench.data.prepared import PreparedData

    if not raw.splits:
        raise DataError("the provider returned no split")
    name, sample = next(iter(raw.splits.items()))
    if spec.label not in sample.column_names:
        raise DataError(f"label column '{spec.label}' not found; columns: {', '.join(sample.column_names)}")
    kinds, ignored = _column_kinds(raw, spec, sample, name)
    checked, notes = check_rows(raw, spec.label, kinds, skip=spec.on_bad_rows == "skip")
    splits = _split(replace(raw, splits=checked), spec)
    classes = _classes(splits, spec.label)
    if spec.degrade:
        from mmbench.data.degrade.base import degrade

        splits = degrade(splits, kinds, spec.degrade, seed=spec.split.seed)
    schema = Schema(modalities=_group_modalities(kinds), label=spec.label, classes=classes)
    sizes = {name: splits[name].num_rows for name in SPLITS}
    files = [c for c, kind in kinds.items() if kind in FILE_KINDS and isinstance(splits["train"][0][c], str)]
    digest = fingerprint(splits, schema.to_dict(), {"split": spec.split.__dict__, **dict(spec.extra)}, files=files)
    notes = {**raw.notes, **notes, **({"ignored_columns": ignored} if ignored else {})}
    return PreparedData(splits=splits, schema=schema, fingerprint=digest, split_sizes=sizes, notes=notes)


def _split(raw: RawData, spec: DataSpec) -> dict[str, datasets.Dataset]:
    names = set(raw.splits)
    if names == set(SPLITS):
        splits = dict(raw.splits)
    elif names == {"all"}:
        whole = raw.splits["all"]
        if spec.label not in whole.column_names:
            raise DataError(f"label column '{spec.label}' not found; columns: {', '.join(whole.column_names)}")
        if spec.split.group_column:
            if spec.split.group_column not in whole.column_names:
                raise ConfigError(f"group_column '{spec.split.group_column}' not found; columns: {', '.join(whole.column_names)}")
            indices = group_split(whole[spec.split.group_column], spec.split)
        else:
            indices = stratified_split(whole[spec.label], spec.split)
        splits = {name: whole.select(indices[name]).flatten_indices() for name in SPLITS}
    else:
        raise DataError(f"provider returned splits {sorted(names)}; expected {list(SPLITS)} or ['all']")
    for name in SPLITS:
        if splits[name].num_rows == 0:
            raise DataError(f"split '{name}' is empty")
    return splits


def _column_kinds(raw: RawData, spec: DataSpec, sample: datasets.Dataset, split_name: str) -> tuple[dict[str, str], list[str]]:
    """Column -> kind (tabular sub-kinds kept) from the provider, the task's overrides and
    inference for the rest; and the identifier columns inference left out."""
    from mmbench.data.bad_rows import base_dir

    columns = sample.column_names
    kinds = {column: kind for column, kind in raw.modalities.items() if column in columns}
    for column, kind in spec.modalities.items():
        if column not in columns:
            raise ConfigError(f"modalities: unknown column '{column}'; columns: {', '.join(columns)}")
        if kind != "ignore" and kind not in (*MODALITY_KINDS, *TABULAR_SUBKINDS):
            available = ", ".join((*MODALITY_KINDS, *TABULAR_SUBKINDS))
            raise ConfigError(f"modalities: column '{column}' has unknown kind '{kind}'; available: {available}, ignore")
        kinds[column] = kind
    ignored = []
    for column in columns:
        if column not in kinds and column not in (spec.label, spec.split.group_column):
            guess = infer_kind(sample, column, base_dir=base_dir(raw, split_name))
            if guess is None:
                ignored.append(column)
            else:
                kinds[column] = guess
    kinds.pop(spec.label, None)
    if spec.split.group_column:
        kinds.pop(spec.split.group_column, None)
    kinds = {column: kind for column, kind in kinds.items() if kind != "ignore"}
    if not kinds:
        raise ConfigError("no modality columns: map columns to kinds under the task's 'modalities:'")
    return kinds, ignored


def _group_modalities(kinds: Mapping[str, str]) -> dict[str, ModalityInfo]:
    """Text columns form one ``text`` modality, tabular ones one ``tabular``; others stand alone."""
    by_kind: dict[str, list[str]] = {}
    for column, kind in kinds.items():
        by_kind.setdefault("tabular" if kind in TABULAR_SUBKINDS else kind, []).append(column)
    modalities: dict[str, ModalityInfo] = {}
    for kind, columns in by_kind.items():
        if kind == "tabular":
            declared = {sub: tuple(c for c in columns if kinds[c] == sub) for sub in TABULAR_SUBKINDS}
            modalities[kind] = ModalityInfo(name=kind, kind=kind, columns=tuple(columns), extra={k: v for k, v in declared.items() if v})
        elif kind in _MERGED_KINDS or len(columns) == 1:
            modalities[kind] = ModalityInfo(name=kind, kind=kind, columns=tuple(columns))
        else:
            for column in columns:
                modalities[column] = ModalityInfo(name=column, kind=kind, columns=(column,))
    return modalities


def _classes(splits: Mapping[str, datasets.Dataset], label: str) -> tuple[str, ...]:
    train_values = splits["train"][label]
    for row, value in enumerate(train_values):
        if value is None or (isinstance(value, float) and value != value):
            raise DataError(f"split 'train', row {row}: label '{label}' is missing")
    classes = sorted({str(v) for v in train_values}, key=_natural_key)
    known = set(classes)
    for name in ("validation", "test"):
        for row, value in enumerate(splits[name][label]):
            if value is None or (isinstance(value, float) and value != value):
                raise DataError(f"split '{name}', row {row}: label '{label}' is missing")
            if str(value) not in known:
                raise DataError(f"split '{name}', row {row}: class '{value}' of label '{label}' never appears in train")
    return tuple(classes)


def _natural_key(value: str) -> tuple[int, float | str]:
    """Sort numeric class names numerically (2 before 10), others alphabetically."""
    try:
        return (0, float(value))
    except ValueError:
        return (1, value)
