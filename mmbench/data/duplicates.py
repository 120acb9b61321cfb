"""The duplicate and leakage probe: rows whose media files or normalised text are identical.

A random split puts copies of one image or text on both sides and reports memorisation as
accuracy; the probe finds such groups at preparation so the split can keep each on one side.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench.data.kinds import registered_kind
from mmbench.data.media import file_digest

if TYPE_CHECKING:
    import datasets

_SPACES = re.compile(r"\s+")


def content_keys(split: datasets.Dataset, kinds: Mapping[str, str]) -> dict[str, list[str | None]]:
    """Column -> per-row content key (file hash, or normalised text) for media and text columns."""
    keys: dict[str, list[str | None]] = {}
    for column, kind in kinds.items():
        if column not in split.column_names:
            continue
        registered = registered_kind(kind)
        if registered is not None and registered.is_file_kind():
            keys[column] = [_media_key(value) for value in split[column]]
        elif kind == "text":
            keys[column] = [normalise_text(value) or None if isinstance(value, str) else None for value in split[column]]
    return keys


def normalise_text(text: str) -> str:
    """Lower case, whitespace collapsed: ``"Hello  World "`` and ``"hello world"`` are one text."""
    return _SPACES.sub(" ", text).strip().lower()


def duplicate_clusters(keys: Mapping[str, Sequence[str | None]], n_rows: int) -> np.ndarray:
    """A cluster id per row: rows sharing a content key in any column share a cluster (transitively)."""
    parent = list(range(n_rows))

    def root(row: int) -> int:
        while parent[row] != row:
            parent[row] = parent[parent[row]]
            row = parent[row]
        return row

    for values in keys.values():
        first: dict[str, int] = {}
        for row, key in enumerate(values):
            if key is None:
                continue
            if key in first:
                parent[root(row)] = root(first[key])
            else:
                first[key] = row
    return np.asarray([root(row) for row in range(n_rows)])


def duplicate_report(clusters: np.ndarray, labels: Sequence[Any], parts: Mapping[str, np.ndarray] | None = None) -> dict[str, int]:
    """How many duplicate groups (clusters of two or more rows) there are, how many rows they hold,
    how many have conflicting labels and (given the split) how many cross splits."""
    ids, counts = np.unique(clusters, return_counts=True)
    shared = set(ids[counts > 1].tolist())
    label_text = np.asarray([str(v) for v in labels])
    side = np.empty(len(clusters), dtype=object)
    for name, rows in (parts or {}).items():
        side[rows] = name
    report = {"groups": len(shared), "rows": int(counts[counts > 1].sum()), "label_conflicts": 0}
    if parts is not None:
        report["crossing_splits"] = 0
    members_of: dict[int, list[int]] = {}
    for row in np.flatnonzero(np.isin(clusters, list(shared))):
        members_of.setdefault(int(clusters[row]), []).append(int(row))
    for members in members_of.values():
        report["label_conflicts"] += len(set(label_text[members].tolist())) > 1
        if parts is not None:
            report["crossing_splits"] += len(set(side[members].tolist())) > 1
    return report


def _media_key(value: Any) -> str | None:
    if isinstance(value, str):
        return file_digest(value)
    if isinstance(value, Mapping) and isinstance(value.get("bytes"), bytes):
        return hashlib.sha1(value["bytes"]).hexdigest()
    return None
