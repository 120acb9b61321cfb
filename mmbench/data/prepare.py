"""From a provider's :class:`RawData` to typed, split, fingerprinted :class:`PreparedData`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench.data.duplicates import content_keys, duplicate_clusters, duplicate_report
from mmbench.data.fingerprint import fingerprint
from mmbench.data.infer import TABULAR_SUBKINDS, infer_kinds
from mmbench.data.inspection import column_report, identifier_warnings
from mmbench.data.kinds import file_columns
from mmbench.data.provider import SPLITS, RawData
from mmbench.data.schema import ModalityInfo, Schema
from mmbench.data.splits import SplitSpec, check_split, group_split, kfold_split, label_strata, stratified_split
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
        task_type: ``classification``, ``multilabel`` or ``regression``; ``None``: inferred from
            the label (:func:`infer_task_type`).
        label_delimiter: a multi-label column's separator in text cells (``"action|drama"``);
            list-valued cells need none.
    """

    label: str
    modalities: Mapping[str, str] = field(default_factory=dict)
    split: SplitSpec = field(default_factory=SplitSpec)
    extra: Mapping[str, Any] = field(default_factory=dict)
    on_bad_rows: str = "error"
    degrade: Mapping[str, Any] = field(default_factory=dict)
    task_type: str | None = None
    label_delimiter: str | None = None


#: an integer label with more distinct values than this (and than a fifth of the rows) is a quantity, not a class
_MANY_VALUES = 50


def infer_task_type(values: list[Any], delimiter: str | None = None) -> str:
    """``multilabel`` for list-valued cells (or text cells when a ``delimiter`` is set);
    ``regression`` for a numeric label with mostly fractional values, or with many distinct
    values (over 50 and over a fifth of the rows); ``classification`` otherwise."""
    present = [v for v in values if v is not None and not (isinstance(v, float) and v != v)]
    if present and (all(isinstance(v, (list, tuple)) for v in present) or (delimiter and all(isinstance(v, str) for v in present))):
        return "multilabel"
    if not present or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in present):
        return "classification"
    if sum(isinstance(v, float) and not v.is_integer() for v in present) * 2 > len(present):
        return "regression"  # mostly fractional (one stray 1.5 among classes is a bad row, reported as such)
    distinct = len(set(present))
    return "regression" if distinct > _MANY_VALUES and distinct > 0.2 * len(present) else "classification"


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
    task_type = spec.task_type or infer_task_type(sample[spec.label], spec.label_delimiter)
    checked, notes = check_rows(raw, spec.label, kinds, skip=spec.on_bad_rows == "skip", task_type=task_type)
    if task_type == "multilabel":
        checked = {name: _as_label_lists(split, spec.label, spec.label_delimiter, name) for name, split in checked.items()}
    splits, split_notes, grouping = _split(replace(raw, splits=checked), spec, kinds, task_type)
    folds = _folds(splits, spec, task_type, grouping) if spec.split.folds else ()
    if folds:
        split_notes["folds"] = {"folds": spec.split.folds, "repeats": spec.split.repeats, "validation_rows": [len(f) for f in folds],
                                **({"grouped_by": grouping[1]} if grouping else {})}
    if task_type == "classification":
        classes = _classes(splits, spec.label)
    else:
        classes = _label_names(splits, spec.label) if task_type == "multilabel" else ()
    scale = _target_scale(splits["train"][spec.label]) if task_type == "regression" else None
    if spec.degrade:
        from mmbench.data.degrade.base import degrade

        splits = degrade(splits, kinds, spec.degrade, seed=spec.split.seed)
    schema = Schema(modalities=_group_modalities(kinds), label=spec.label, task_type=task_type, classes=classes, target_scale=scale)
    sizes = {name: splits[name].num_rows for name in SPLITS}
    files = [c for c in file_columns(kinds) if isinstance(splits["train"][0][c], str)]
    digest = fingerprint(splits, schema.to_dict(), {"split": _split_settings(spec.split), **dict(spec.extra)}, files=files)
    notes = {**raw.notes, **notes, **split_notes, **({"ignored_columns": ignored} if ignored else {})}
    notes["columns"] = column_report(sample.column_names, kinds, label=spec.label, group_column=spec.split.group_column,
                                     declared=spec.modalities, provided=raw.modalities, ignored=ignored)
    warnings = identifier_warnings(sample, kinds, spec.modalities)
    if warnings:
        notes["column_warnings"] = warnings
    return PreparedData(splits=splits, schema=schema, fingerprint=digest, split_sizes=sizes, notes=notes, folds=folds)


def _folds(splits: Mapping[str, datasets.Dataset], spec: DataSpec, task_type: str,
           grouping: tuple[list[str], str] | None) -> tuple[np.ndarray, ...]:
    """The k folds (:func:`kfold_split`) over train rows then validation rows, grouped as the split was."""
    labels = list(splits["train"][spec.label]) + list(splits["validation"][spec.label])
    groups, by = grouping if grouping else (None, None)
    return kfold_split(label_strata(labels, task_type), spec.split, groups, labels=labels if task_type == "classification" else None, by=by)


def _split(raw: RawData, spec: DataSpec, kinds: Mapping[str, str],
           task_type: str) -> tuple[dict[str, datasets.Dataset], dict[str, Any], tuple[list[str], str] | None]:
    """The three splits (the provider's, or cut from ``all``), the duplicate probe's notes, and the
    groups the cut kept together (group per train then validation row, and what they are), if any."""
    names = set(raw.splits)
    group = spec.split.group_column
    grouping = None
    if names == set(SPLITS):
        splits = dict(raw.splits)
        if group and spec.split.folds:
            if any(group not in splits[name].column_names for name in ("train", "validation")):
                raise ConfigError(f"group_column '{group}' not found; columns: {', '.join(splits['train'].column_names)}")
            grouping = ([str(v) for name in ("train", "validation") for v in splits[name][group]], repr(group))
        per_split = [content_keys(splits[name], kinds) for name in SPLITS]
        keys = {column: [key for part in per_split for key in part[column]] for column in per_split[0]}
        offsets = np.cumsum([0] + [splits[name].num_rows for name in SPLITS])
        indices = {name: np.arange(offsets[i], offsets[i + 1]) for i, name in enumerate(SPLITS)}
        report = duplicate_report(duplicate_clusters(keys, int(offsets[-1])), [v for n in SPLITS for v in splits[n][spec.label]], indices)
        notes = {"duplicates": report} if report["groups"] else {}
    elif names == {"all"}:
        whole = raw.splits["all"]
        if spec.label not in whole.column_names:
            raise DataError(f"label column '{spec.label}' not found; columns: {', '.join(whole.column_names)}")
        indices, notes, cut_groups = _cut(whole, spec, kinds, task_type)
        splits = {name: whole.select(indices[name]).flatten_indices() for name in SPLITS}
        if cut_groups is not None:
            pool = np.concatenate([indices["train"], indices["validation"]])
            grouping = ([cut_groups[0][i] for i in pool], cut_groups[1])
    else:
        raise DataError(f"provider returned splits {sorted(names)}; expected {list(SPLITS)} or ['all']")
    for name in SPLITS:
        if splits[name].num_rows == 0:
            raise DataError(f"split '{name}' is empty")
    return splits, notes, grouping


def _cut(whole: datasets.Dataset, spec: DataSpec, kinds: Mapping[str, str],
         task_type: str) -> tuple[dict[str, np.ndarray], dict[str, Any], tuple[list[str], str] | None]:
    """Row indices per split of unsplit data: grouped (by ``group_column`` and by duplicate
    content) and checked, else stratified; the duplicate probe's report; and the groups used
    (group per row, and what they are), if any.

    Duplicates are grouped when ``split.group_duplicates`` is true, or when it is unset and the
    duplicate groups allow a sound split (otherwise the notes say why they were not).
    """
    split, labels = spec.split, whole[spec.label]
    groups = None
    if split.group_column:
        if split.group_column not in whole.column_names:
            raise ConfigError(f"group_column '{split.group_column}' not found; columns: {', '.join(whole.column_names)}")
        groups = [str(v) for v in whole[split.group_column]]
    clusters = duplicate_clusters(content_keys(whole, kinds), whole.num_rows)
    report: dict[str, Any] = duplicate_report(clusters, labels)
    indices, used = None, None
    if report["groups"] and split.group_duplicates is not False:
        keys = {"duplicates": [str(c) for c in clusters], **({"group_column": groups} if groups else {})}
        merged = [str(c) for c in duplicate_clusters(keys, whole.num_rows)]
        by = " and ".join(([f"'{split.group_column}'"] if split.group_column else []) + ["duplicate content"])
        try:
            indices, used = _grouped(labels, merged, split, by, task_type), (merged, by)
        except (ConfigError, DataError) as error:
            if split.group_duplicates:
                raise
            report["not_grouped_because"] = str(error)
    if indices is None and groups is None:
        indices = stratified_split(label_strata(labels, task_type), split)
    elif indices is None:
        used = (groups, f"'{split.group_column}'")
        indices = _grouped(labels, groups, split, used[1], task_type)
    if not report["groups"]:
        return indices, {}, used
    report = {**report, **duplicate_report(clusters, labels, indices), "grouped": "not_grouped_because" not in report and split.group_duplicates is not False}
    return indices, {"duplicates": report}, used


def _grouped(labels: list[Any], groups: list[str], split: SplitSpec, by: str, task_type: str) -> dict[str, np.ndarray]:
    indices = group_split(groups, split, strata=label_strata(labels, task_type), by=by)
    check_split(indices, labels if task_type == "classification" else None, groups, split, by=by)
    return indices


def _as_label_lists(split: datasets.Dataset, label: str, delimiter: str | None, split_name: str) -> datasets.Dataset:
    """A multi-label column as lists of label names (text cells cut at the delimiter).

    Raises:
        DataError: a cell that is neither text nor a list (a number: a single-label column), naming its row.
    """
    from mmbench.data.bad_rows import replace_column

    def names(value: Any, row: int) -> list[str]:
        if isinstance(value, str):
            parts = value.split(delimiter) if delimiter else [value]
        elif isinstance(value, (list, tuple, np.ndarray)):
            parts = value
        else:
            raise DataError(f"label '{label}': split '{split_name}' row {row} holds {value!r}; a multilabel label is a list "
                            "of names or text cut at label_delimiter (for one class per row use task: classification)")
        return sorted({str(part).strip() for part in parts if str(part).strip()})

    return replace_column(split, label, [names(v, row) for row, v in enumerate(split[label])])


def _label_names(splits: Mapping[str, datasets.Dataset], label: str) -> tuple[str, ...]:
    """A multi-label task's labels: those seen in train (one seen only elsewhere is an error)."""
    known = sorted({name for names in splits["train"][label] for name in names}, key=_natural_key)
    for split in ("validation", "test"):
        unseen = sorted({name for names in splits[split][label] for name in names} - set(known))
        if unseen:
            raise DataError(f"split '{split}': label(s) {', '.join(unseen[:5])} of '{label}' never appear in train")
    return tuple(known)


def _split_settings(split: SplitSpec) -> dict[str, Any]:
    """The split's settings for the fingerprint; the checks' switches only when set, so the
    fingerprints of tasks that leave them alone stay what they were (the split rows are hashed anyway)."""
    unset = {"allow_missing_classes": (False, None), "group_duplicates": (False, None), "folds": (None,), "repeats": (1,)}
    return {k: v for k, v in split.__dict__.items() if k not in unset or v not in unset[k]}


def _target_scale(values: list[Any]) -> tuple[float, float]:
    """Mean and standard deviation of a regression target on train (std 1 for a constant target)."""
    array = np.asarray(values, dtype=float)
    std = float(array.std())
    return float(array.mean()), std if std > 0 else 1.0


def _column_kinds(raw: RawData, spec: DataSpec, sample: datasets.Dataset, split_name: str) -> tuple[dict[str, str], list[str]]:
    """Column -> kind (tabular sub-kinds kept) from the provider, the task's overrides and
    inference for the rest; and the identifier columns inference left out."""
    from mmbench.data.bad_rows import base_dir
    from mmbench.registry import get_registry

    columns = sample.column_names
    known = (*get_registry().list_kinds(), *TABULAR_SUBKINDS)
    kinds = {column: kind for column, kind in raw.modalities.items() if column in columns}
    for column, kind in spec.modalities.items():
        if column not in columns:
            raise ConfigError(f"modalities: unknown column '{column}'; columns: {', '.join(columns)}")
        if kind != "ignore" and kind not in known:
            available = ", ".join(known)
            raise ConfigError(f"modalities: column '{column}' has unknown kind '{kind}'; available: {available}, ignore")
        kinds[column] = kind
    undeclared = [column for column in columns if column not in kinds and column not in (spec.label, spec.split.group_column)]
    guesses = infer_kinds(sample, undeclared, base_dir=base_dir(raw, split_name)) if undeclared else {}
    ignored = [column for column in undeclared if guesses[column] is None]
    kinds.update({column: guess for column, guess in guesses.items() if guess is not None})
    kinds.pop(spec.label, None)
    group = spec.split.group_column
    if group and spec.modalities.get(group, "ignore") == "ignore" and group not in raw.modalities:
        kinds.pop(group, None)  # a grouping key, not a feature, unless the task or provider declares it one
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
