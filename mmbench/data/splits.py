"""Honest splits: provided ones kept, otherwise seeded, stratified and group-aware, then checked."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from mmbench.errors import ConfigError, DataError

#: a split whose share of rows is off its requested fraction by more than this share of it is refused
SIZE_TOLERANCE = 0.5
#: StratifiedGroupKFold seeds tried per cut; the best fold among them is kept
_CANDIDATE_SEEDS = 8


@dataclass(frozen=True)
class SplitSpec:
    """How to split data that arrives unsplit.

    Attributes:
        validation: fraction of rows for validation.
        test: fraction of rows for test.
        seed: the split's seed; the same seed gives the same split.
        group_column: rows sharing this column's value stay on one side of every split.
        allow_missing_classes: accept a grouped split in which a split lacks a class
            (otherwise a :class:`DataError`).
        group_duplicates: keep rows with identical content (media files, normalised text) on
            one side; ``None``: yes when the duplicate probe finds any.
        folds: k-fold cross-validation over train + validation (``None``: one validation split);
            the test split stays held out.
        repeats: how many times the k folds are drawn, each with its own seed.
    """

    validation: float = 0.15
    test: float = 0.15
    seed: int = 0
    group_column: str | None = None
    allow_missing_classes: bool = False
    group_duplicates: bool | None = None
    folds: int | None = None
    repeats: int = 1

    def __post_init__(self) -> None:
        if self.folds is not None and (isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2):
            raise ConfigError(f"split.folds must be an integer of at least 2, got {self.folds!r}")
        if isinstance(self.repeats, bool) or not isinstance(self.repeats, int) or self.repeats < 1:
            raise ConfigError(f"split.repeats must be an integer of at least 1, got {self.repeats!r}")
        if self.repeats > 1 and self.folds is None:
            raise ConfigError("split.repeats repeats k-fold cross-validation: set split.folds too")
        if not (0 < self.validation < 1 and 0 < self.test < 1 and self.validation + self.test < 1):
            raise ConfigError(
                f"split fractions must be in (0, 1) and sum below 1, got validation={self.validation}, test={self.test}"
            )

    @property
    def fractions(self) -> dict[str, float]:
        """Split name -> requested share of rows whose size is checked (with folds, validation is one of
        the folds' rows, so only train + validation against test counts)."""
        if self.folds:
            return {"train": 1 - self.test, "test": self.test}
        return {"train": 1 - self.validation - self.test, "validation": self.validation, "test": self.test}


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


def group_split(groups: Sequence[object], spec: SplitSpec, strata: Sequence[object] | None = None, *,
                by: str | None = None) -> dict[str, np.ndarray]:
    """Split row indices so that no group value appears in two splits, sized by rows and
    stratified by ``strata`` (class labels, or binned targets) when given.

    Test, then validation, is one fold of scikit-learn's ``StratifiedGroupKFold``: among the
    folds of a few seeded shuffles, the one that holds every stratum and is closest to the
    requested share of rows. ``by`` names the groups in messages (default: the group column).

    Returns:
        split name -> sorted row indices.
    """
    groups = np.asarray([str(group) for group in groups])
    n_groups = len(np.unique(groups))
    if n_groups < 3:
        raise ConfigError(
            f"grouping by {by or repr(spec.group_column)} gives {n_groups} distinct group(s); a group split needs at least 3"
        )
    strata_array = np.zeros(len(groups), dtype=int) if strata is None else np.unique(np.asarray([str(s) for s in strata]), return_inverse=True)[1]
    rows = np.arange(len(groups))
    test = _best_fold(rows, strata_array, groups, spec.test, spec.seed)
    rest = np.setdiff1d(rows, test)
    validation = _best_fold(rest, strata_array[rest], groups[rest], spec.validation / (1 - spec.test), spec.seed + 1)
    train = np.setdiff1d(rest, validation)
    return {"train": train, "validation": np.sort(validation), "test": np.sort(test)}


def check_split(parts: dict[str, np.ndarray], labels: Sequence[object] | None, groups: Sequence[object], spec: SplitSpec,
                *, by: str | None = None) -> None:
    """Refuse a grouped split that lacks a class or is far from its requested size.

    Args:
        parts: split name -> row indices.
        labels: class labels per row (``None`` for regression: no class check).
        groups: group value per row.
        spec: the requested split.
        by: what the groups are, for the message (default: the group column).

    Raises:
        DataError: naming the split, its groups and the fixes.
    """
    groups = np.asarray([str(g) for g in groups])
    label_array = None if labels is None else np.asarray([str(v) for v in labels])
    classes = set() if label_array is None else set(label_array.tolist())
    total = len(groups)
    for name, requested in spec.fractions.items():
        rows = np.concatenate([parts["train"], parts["validation"]]) if spec.folds and name == "train" else parts[name]
        share = len(rows) / total
        problems = []
        if abs(share - requested) > SIZE_TOLERANCE * requested:
            problems.append(f"{len(rows)} rows ({share:.0%} of {total}, requested {requested:.0%})")
        missing = sorted(classes - set(label_array[rows].tolist())) if label_array is not None else []
        if missing and not spec.allow_missing_classes:
            problems.append(f"no row of class(es) {', '.join(repr(m) for m in missing)}")
        if problems:
            shown = _groups_shown(groups[rows])
            raise DataError(
                f"grouped split by {by or repr(spec.group_column)}: split '{name}' has {' and '.join(problems)}; its groups: "
                f"{shown or 'none'}; the groups cannot give this split: try another split.seed, other split fractions, "
                "or split.allow_missing_classes: true"
            )


def kfold_split(strata: Sequence[object], spec: SplitSpec, groups: Sequence[object] | None = None, *,
                labels: Sequence[object] | None = None, by: str | None = None) -> tuple[np.ndarray, ...]:
    """The validation rows of each of ``spec.repeats`` x ``spec.folds`` folds (repeat by repeat),
    as positions in ``strata``: stratified, and grouped when ``groups`` is given (scikit-learn's
    ``StratifiedGroupKFold``; ``StratifiedKFold`` or ``KFold`` without groups). Repeat ``r`` is
    shuffled with ``spec.seed + r``.

    Args:
        strata: what to stratify by, per row (:func:`label_strata`).
        spec: the split, with ``folds`` set.
        groups: group per row: a group's rows share one fold.
        labels: class labels (classification): a grouped fold without some class is a
            :class:`DataError` unless ``spec.allow_missing_classes``.
        by: what the groups are, for messages (default: the group column).

    Raises:
        ConfigError: fewer rows (or groups) than folds.
        DataError: a grouped fold lacks a class.
    """
    from sklearn.model_selection import KFold, StratifiedGroupKFold, StratifiedKFold

    if not spec.folds:
        raise ValueError("kfold_split needs spec.folds")
    codes = np.unique(np.asarray([str(s) for s in strata]), return_inverse=True)[1]
    counts = np.bincount(codes)
    rows = np.zeros(len(codes))
    group_array = None if groups is None else np.asarray([str(g) for g in groups])
    units = len(codes) if group_array is None else len(np.unique(group_array))
    if units < spec.folds:
        what = "rows" if group_array is None else f"groups of {by or repr(spec.group_column)}"
        raise ConfigError(f"split.folds: {spec.folds} folds need at least {spec.folds} {what}; there are {units}")
    folds: list[np.ndarray] = []
    for repeat in range(spec.repeats):
        seed = spec.seed + repeat
        with warnings.catch_warnings():  # "the least populated class has fewer members than n_splits": expected on small data
            warnings.simplefilter("ignore", UserWarning)
            if group_array is not None:
                cuts = StratifiedGroupKFold(n_splits=spec.folds, shuffle=True, random_state=seed).split(rows, codes, group_array)
            elif counts.max() >= spec.folds:
                cuts = StratifiedKFold(n_splits=spec.folds, shuffle=True, random_state=seed).split(rows, codes)
            else:  # every stratum smaller than the folds: nothing to stratify
                cuts = KFold(n_splits=spec.folds, shuffle=True, random_state=seed).split(rows)
            folds.extend(np.sort(validation) for _, validation in cuts)
    if group_array is not None and labels is not None and not spec.allow_missing_classes:
        _check_fold_classes(folds, np.asarray([str(v) for v in labels]), group_array, by or repr(spec.group_column))
    return tuple(folds)


def _check_fold_classes(folds: list[np.ndarray], labels: np.ndarray, groups: np.ndarray, by: str) -> None:
    classes = set(labels.tolist())
    for index, fold in enumerate(folds):
        missing = sorted(classes - set(labels[fold].tolist()))
        if missing:
            shown = _groups_shown(groups[fold])
            raise DataError(
                f"k-fold split by {by}: fold {index} has no row of class(es) {', '.join(repr(m) for m in missing)}; its groups: "
                f"{shown}; try fewer split.folds, another split.seed, or split.allow_missing_classes: true"
            )


def label_strata(labels: Sequence[object], task_type: str, n_bins: int = 5) -> list[str]:
    """What a split stratifies by: the class (classification), the label set (multilabel) or
    the target's quantile bin (regression)."""
    if task_type == "multilabel":
        return ["|".join(sorted(map(str, v))) if isinstance(v, (list, tuple)) else str(v) for v in labels]
    if task_type != "regression":
        return [str(v) for v in labels]
    values = np.asarray(labels, dtype=float)
    edges = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return [str(b) for b in np.searchsorted(edges, values, side="right")]


def _best_fold(rows: np.ndarray, strata: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``rows`` of the StratifiedGroupKFold fold that best matches ``fraction`` and holds every stratum."""
    from sklearn.model_selection import StratifiedGroupKFold

    n_groups = len(np.unique(groups))
    n_splits = int(min(max(2, round(1 / fraction)), n_groups))
    wanted = set(np.unique(strata).tolist())
    best, best_score = None, np.inf
    for offset in range(_CANDIDATE_SEEDS):
        folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed * _CANDIDATE_SEEDS + offset)
        with warnings.catch_warnings():  # "the least populated class has fewer members than n_splits": we check ourselves
            warnings.simplefilter("ignore", UserWarning)
            for _, fold in folds.split(np.zeros(len(rows)), strata, groups):
                missing = len(wanted - set(strata[fold].tolist()))
                score = missing + abs(len(fold) / len(rows) - fraction)
                if score < best_score:
                    best, best_score = fold, score
    return rows[best]


def _cut_sizes(n: int, spec: SplitSpec) -> tuple[int, int]:
    """(n_test, n_validation) for ``n`` items: at least one each when there are three or more."""
    if n < 3:
        return 0, 0
    n_test = max(1, int(round(n * spec.test)))
    n_val = max(1, int(round(n * spec.validation)))
    return min(n_test, n - 2), min(n_val, n - 1 - min(n_test, n - 2))


def _groups_shown(groups: np.ndarray, limit: int = 10) -> str:
    """The distinct groups of some rows for a one-line message: the first ``limit``, then a count."""
    members = sorted(set(groups.tolist()))
    return ", ".join(members[:limit]) + (f", ... ({len(members)} groups)" if len(members) > limit else "")
