"""What preparation decided about each column, and warnings on columns that look like identifiers.

Measured on held-out data: ``zipcode`` and a product id were inferred numeric features, an
``event`` grouping column and a ``split`` column categorical ones. Such columns let a model
memorise rows or leak the split, so the data notes and ``mmbench inspect`` name them.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets

    from mmbench.data.prepared import PreparedData

#: column names that usually hold an identifier, a location code or a grouping key, not a feature
_IDENTIFIER_NAME = re.compile(r"(^|[_\W])(id|ids|uuid|key|zip|zipcode|postcode|postal|code|split|fold|event|group|index|idx)($|[_\W])",
                              re.IGNORECASE)


def column_report(columns: list[str], kinds: Mapping[str, str], *, label: str, group_column: str | None,
                  declared: Mapping[str, str], provided: Mapping[str, str], ignored: list[str]) -> dict[str, list[str]]:
    """Column -> ``[kind, why]``: the label, the group column, a feature and where its kind came from, or left out."""
    report: dict[str, list[str]] = {}
    for column in columns:
        if column == label:
            report[column] = ["label", "the task's label"]
        elif column in kinds:
            why = ("task file (modalities:)" if column in declared else "the dataset provider" if column in provided
                   else "inferred from its values")
            report[column] = [kinds[column], why + (" and split.group_column" if column == group_column else "")]
        elif column == group_column:
            report[column] = ["group", "split.group_column (not a feature)"]
        elif column in ignored:
            report[column] = ["ignored", "an identifier: every value distinct"]
        else:
            report[column] = ["ignored", "task file (modalities: ignore)" if declared.get(column) == "ignore" else "not used"]
    return report


def identifier_warnings(split: datasets.Dataset, kinds: Mapping[str, str], declared: Mapping[str, str]) -> list[str]:
    """One line per inferred feature column that looks like an identifier or a grouping key: by
    its name (``zipcode``, ``product_id``, ``event``, ``split``) or by distinct integer values in every row."""
    from mmbench.data.infer import read_columns

    undeclared = [column for column in kinds if column not in declared]  # a declared kind was chosen knowingly
    numeric = [column for column in undeclared if kinds[column] == "numeric" and not _IDENTIFIER_NAME.search(column)]
    table = read_columns(split, numeric) if numeric else None  # one read: a read per column is quadratic
    checked = set(numeric)
    warnings = []
    for column in undeclared:
        kind, reason = kinds[column], None
        if _IDENTIFIER_NAME.search(column):
            reason = "its name suggests an identifier or a grouping key"
        elif column in checked and _distinct_integers(table.column(column).to_pylist()):  # type: ignore[union-attr]
            reason = "every row holds a different whole number"
        if reason:
            warnings.append(f"column '{column}' was inferred {kind} but {reason}: map it to 'ignore' under modalities:, "
                            f"or use it as split.group_column")
    return warnings


def _distinct_integers(values: list[Any]) -> bool:
    present = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return len(present) > 20 and all(float(v).is_integer() for v in present) and len(set(present)) == len(present)


def summary_lines(data: PreparedData, *, group_column: str | None = None, n_shown: int = 8) -> list[str]:
    """What the data became, before any compute: columns and why, modalities, split sizes, class
    balance per split, groups, the duplicate probe and identifier warnings (``mmbench inspect``,
    and the first lines of ``mmbench search``)."""
    from mmbench.data.provider import SPLITS

    schema, notes = data.schema, data.notes
    lines = [f"task type: {schema.task_type}; label '{schema.label}'"]
    for column, (kind, why) in notes.get("columns", {}).items():
        lines.append(f"  column {column!r}: {kind} ({why})")
    lines.append("modalities: " + ", ".join(f"{name} [{info.kind}: {', '.join(info.columns)}]" for name, info in schema.modalities.items()))
    lines.append("splits: " + ", ".join(f"{name} {data.split_sizes[name]}" for name in SPLITS))
    lines.extend(f"  {line}" for line in balance_lines(class_balance(data), n_shown=n_shown))
    if data.folds:  # split.folds: train + validation are shared out into folds, test stays held out
        folds = notes.get("folds", {})
        lines.append(f"k-fold: {folds.get('folds')} folds x {folds.get('repeats')} repeat(s) over train + validation "
                     f"({data.split_sizes['train'] + data.split_sizes['validation']} rows), test held out; fold validation rows: "
                     + ", ".join(map(str, folds.get("validation_rows", []))))
    if group_column and group_column in data.splits["train"].column_names:
        lines.append("groups: " + ", ".join(f"{name} {len(set(map(str, data.splits[name][group_column])))}" for name in SPLITS)
                     + f" distinct '{group_column}' values, none shared between splits")
    duplicates = notes.get("duplicates")
    if duplicates:
        crossing = duplicates.get("crossing_splits")
        lines.append(f"duplicates: {duplicates['groups']} groups of identical content ({duplicates['rows']} rows), "
                     f"{duplicates['label_conflicts']} with conflicting labels"
                     + (f", {crossing} crossing splits" if crossing is not None else "")
                     + ("; kept on one side each (split.group_duplicates)" if duplicates.get("grouped") else ""))
        if duplicates.get("not_grouped_because"):
            lines.append(f"  not grouped: {duplicates['not_grouped_because']}")
    else:
        lines.append("duplicates: none found")
    lines.extend(f"warning: {text}" for text in notes.get("column_warnings", []))
    return lines


def class_balance(data: PreparedData) -> dict[str, dict[str, Any]]:
    """Split -> ``{"rows": n, "classes": {class: count}}`` (largest first; a multi-label row counts
    once per label it holds), or for regression ``{"rows": n, "mean": m, "std": s}`` of the target:
    what ``mmbench inspect`` prints and the search records for the leaderboard."""
    import statistics
    from collections import Counter

    from mmbench.data.provider import SPLITS

    schema = data.schema
    balance: dict[str, dict[str, Any]] = {}
    for name in SPLITS:
        values = data.splits[name][schema.label]
        if schema.task_type == "regression":
            balance[name] = {"rows": len(values), "mean": statistics.fmean(values) if values else float("nan"),
                             "std": statistics.pstdev(values) if len(values) > 1 else 0.0}
            continue
        counts = Counter(v for row in values for v in row) if schema.task_type == "multilabel" else Counter(str(v) for v in values)
        balance[name] = {"rows": len(values), "classes": dict(counts.most_common())}
    return balance


def balance_lines(balance: Mapping[str, Mapping[str, Any]], *, n_shown: int = 8) -> list[str]:
    """One line per split of :func:`class_balance`: ``train classes: pos 60 (62%), neg 36 (38%)``
    (share of the split's rows), or ``train: target mean 2.5, std 1.1``."""
    lines = []
    for name, entry in balance.items():
        if "classes" not in entry:
            lines.append(f"{name}: target mean {entry['mean']:.4g}, std {entry['std']:.4g}")
            continue
        counts = list(entry["classes"].items())
        shown = ", ".join(f"{label} {count} ({count / max(1, entry['rows']):.0%})" for label, count in counts[:n_shown])
        hidden = max(0, len(counts) - n_shown) + int(entry.get("more", 0))  # "more": classes a record left out
        lines.append(f"{name} classes: {shown}" + (f", ... {hidden} more" if hidden else ""))
    return lines
