"""Comparisons between leaderboard rows: seed noise and the gain of fusion over one modality.

The leaderboard reads these while it ranks runs; the evaluations that record seed reruns and
baselines (:mod:`mmbench.runs.evaluation.seeds`, :mod:`~mmbench.runs.evaluation.baselines`)
sit above it and import them from here.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmbench.tracking.layout import ROLE_BASELINE, TAG

if TYPE_CHECKING:
    from mmbench.tracking.tracker import Tracker

#: standard errors of the difference within which two means are "within noise"
NOISE_Z = 2.0


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """Mean and sample standard deviation (``None`` for a single value).

    Example:
        >>> mean_std([0.8, 0.9, 1.0])
        (0.9, 0.09999999999999998)
    """
    if not values:
        raise ValueError("mean_std of no values")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def within_noise(a: tuple[float, float | None, int], b: tuple[float, float | None, int], *, z: float = NOISE_Z) -> bool | None:
    """Whether two means ``(mean, std, n)`` differ by less than ``z`` standard errors of their difference.

    Returns ``None`` when either side has a single seed (no estimate of its noise).

    Example:
        >>> within_noise((0.90, 0.02, 3), (0.89, 0.02, 3))
        True
        >>> within_noise((0.90, 0.001, 3), (0.80, 0.001, 3))
        False
    """
    (mean_a, std_a, n_a), (mean_b, std_b, n_b) = a, b
    if std_a is None or std_b is None or n_a < 2 or n_b < 2:
        return None
    error = math.sqrt(std_a**2 / n_a + std_b**2 / n_b)
    return abs(mean_a - mean_b) <= z * error


def mark_within_noise(rows: Sequence[Any]) -> None:
    """Set ``row.within_noise`` on one task's ranked rows: is it within noise of the top row?"""
    if not rows:
        return
    top = rows[0]
    for row in rows:
        row.within_noise = None if row is top else within_noise(
            (top.val_score, top.val_std, top.n_seeds), (row.val_score, row.val_std, row.n_seeds)
        )


def best_unimodal(tracker: Tracker, experiment_ids: list[str]) -> dict[str, tuple[float, str]]:
    """Task -> (best baseline validation score, its modality), over every recorded baseline run."""
    if not experiment_ids:
        return {}
    runs = tracker.search_runs(experiment_ids, filter_string=f"tags.`{TAG}role` = '{ROLE_BASELINE}'", max_results=5000)
    best: dict[str, tuple[float, str]] = {}
    for run in runs:
        task, value = run.data.tags.get(f"{TAG}task"), run.data.metrics.get("val_score")
        if task and value is not None and (task not in best or value > best[task][0]):
            best[task] = (value, run.data.tags.get(f"{TAG}baseline_modality", "?"))
    return best


def fusion_gains(rows: list[Any], baselines: dict[str, tuple[float, str]]) -> None:
    """Set each leaderboard row's ``fusion_gain`` (validation score over the task's best baseline)."""
    for row in rows:
        if row.task in baselines:
            row.fusion_gain = row.val_score - baselines[row.task][0]
