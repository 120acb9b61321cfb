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
    warnings = []
    for column, kind in kinds.items():
        if column in declared:
            continue  # the user chose this kind knowingly
        reason = None
        if _IDENTIFIER_NAME.search(column):
            reason = "its name suggests an identifier or a grouping key"
        elif kind == "numeric" and _distinct_integers(split[column]):
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
    from collections import Counter

    from mmbench.data.provider import SPLITS

    schema, notes = data.schema, data.notes
    lines = [f"task type: {schema.task_type}; label '{schema.label}'"]
    for column, (kind, why) in notes.get("columns", {}).items():
        lines.append(f"  column {column!r}: {kind} ({why})")
    lines.append("modalities: " + ", ".join(f"{name} [{info.kind}: {', '.join(info.columns)}]" for name, info in schema.modalities.items()))
    lines.append("splits: " + ", ".join(f"{name} {data.split_sizes[name]}" for name in SPLITS))
    for name in SPLITS:
        values = data.splits[name][schema.label]
        if schema.task_type == "regression":
            import statistics

            spread = statistics.pstdev(values) if len(values) > 1 else 0.0
            lines.append(f"  {name}: target mean {statistics.fmean(values):.4g}, std {spread:.4g}")
            continue
        counts = Counter(v for row in values for v in row) if schema.task_type == "multilabel" else Counter(str(v) for v in values)
        shown = ", ".join(f"{label} {count} ({count / max(1, len(values)):.0%})" for label, count in counts.most_common(n_shown))
        more = f", ... {len(counts) - n_shown} more" if len(counts) > n_shown else ""
        lines.append(f"  {name} classes: {shown}{more}")
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
