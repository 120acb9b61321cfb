"""Honest splits: provided ones kept, otherwise seeded, stratified and group-aware."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmbench.errors import ConfigError


@dataclass(frozen=True)
class SplitSpec:
    """How to split data that arrives unsplit.

    Attributes:
        validation: fraction of rows (or groups) for validation.
        test: fraction for test.
        seed: the split's seed; the same seed gives the same split.
        group_column: rows sharing this column's value stay on one side of every split.
    """

    validation: float = 0.15
    test: float = 0.15
    seed: int = 0
    group_column: str | None = None

    def __post_init__(self) -> None:
        if not (0 < self.validation < 1 and 0 < self.test < 1 and self.validation + self.test < 1):
            raise ConfigError(
                f"split fractions must be in (0, 1) and sum below 1, got validation={self.validation}, test={self.test}"
            )


def stratified_split(labels: Sequence[object], spec: SplitSpec) -> dict[str, np.ndarray]:
    """Split row indices into train/validation/test, keeping class proportions.

    Each class is shuffled with the spec's seed and cut by the fractions, so every class with
    at least three rows appears in every split.

    Returns:
        split name -> sorted row indices.
    """
    rng = np.random.default_rng(spec.seed)
    labels = np.asarray([str(label) for label in labels])
    parts: dict[str, list[np.ndarray]] = {"train": [], "validation": [], "test": []}
    for value in np.unique(labels):
        rows = rng.permutation(np.flatnonzero(labels == value))
        n_test, n_val = _cut_sizes(len(rows), spec)
        parts["test"].append(rows[:n_test])
        parts["validation"].append(rows[n_test : n_test + n_val])
        parts["train"].append(rows[n_test + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


def group_split(groups: Sequence[object], spec: SplitSpec) -> dict[str, np.ndarray]:
    """Split row indices so that no group value appears in two splits.

    Groups (not rows) are shuffled with the seed and assigned to splits by the fractions.
    """
    rng = np.random.default_rng(spec.seed)
    groups = np.asarray([str(group) for group in groups])
    unique = rng.permutation(np.unique(groups))
    if len(unique) < 3:
        raise ConfigError(
            f"group_column '{spec.group_column}' has {len(unique)} distinct value(s); a group split needs at least 3"
        )
    n_test, n_val = _cut_sizes(len(unique), spec)
    assignment = {
        "test": set(unique[:n_test]),
        "validation": set(unique[n_test : n_test + n_val]),
        "train": set(unique[n_test + n_val :]),
    }
    return {name: np.flatnonzero(np.isin(groups, list(members))) for name, members in assignment.items()}


def _cut_sizes(n: int, spec: SplitSpec) -> tuple[int, int]:
    """(n_test, n_validation) for ``n`` items: at least one each when there are three or more."""
    if n < 3:
        return 0, 0
    n_test = max(1, int(round(n * spec.test)))
    n_val = max(1, int(round(n * spec.validation)))
    return min(n_test, n - 2), min(n_val, n - 1 - min(n_test, n - 2))
