"""Seed reruns: is the leaderboard's order signal or noise?

``mmbench search --seeds N`` retrains the top-K configurations of the study with ``N - 1``
more seeds each (seed ``s + 1000 k``, so they never collide with another trial's ``s``). The
reruns are ordinary trial runs with the same parameters except the seed (tag
``mmbench.kind=seed``), so the leaderboard's mean ± std over a configuration's seeds includes
them. Two rows whose means differ by less than twice the standard error of the difference
(Welch) are marked "within noise" of each other: the ranking between them is not evidence.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    from mmbench.registry import Registry

#: configurations rerun by ``--seeds`` (the best ones by validation score)
DEFAULT_TOP_K = 3
#: seed offset between reruns of one configuration
SEED_STRIDE = 1000
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


def top_runs(tracker: Tracker, experiment_id: str, study: str, k: int) -> list[Any]:
    """The study's ``k`` best original trial runs by validation score, one per distinct configuration."""
    runs = tracker.trial_runs([experiment_id], extra_filter=f"tags.`{TAG}state` = 'COMPLETE' and tags.`{TAG}study` = '{study}'")
    runs = [r for r in runs if "val_score" in r.data.metrics and r.data.tags.get(f"{TAG}kind") != "seed"]
    runs.sort(key=lambda r: -r.data.metrics["val_score"])
    chosen, seen = [], set()
    for run in runs:
        key = tuple(sorted((p, v) for p, v in run.data.params.items() if p != "seed"))
        if key not in seen:
            seen.add(key)
            chosen.append(run)
    return chosen[:k]


def rerun_seeds(tracker: Tracker, experiment_id: str, study: str, registry: Registry, *, n_seeds: int,
                top_k: int = DEFAULT_TOP_K, data_root: Any = None, device: str = "cpu") -> list[str]:
    """Retrain the top-``top_k`` configurations with ``n_seeds - 1`` more seeds each.

    Reruns already recorded (same configuration and seed) are not repeated, so a resumed
    search with ``--seeds`` only fills in what is missing.

    Returns:
        The new runs' ids.

    Raises:
        ConfigError: ``n_seeds`` below 1.
    """
    from mmbench.train.efficiency import efficiency_metrics
    from mmbench.runs.evaluation.recording import record_trained_run
    from mmbench.runs.reproduce import final_metrics, load_source, train_config

    if n_seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {n_seeds}")
    created: list[str] = []
    done = {(r.data.tags.get(f"{TAG}derived_from"), r.data.tags.get(f"{TAG}seed"))
            for r in tracker.trial_runs([experiment_id], extra_filter=f"tags.`{TAG}kind` = 'seed'")}
    for run in top_runs(tracker, experiment_id, study, top_k) if n_seeds > 1 else []:
        source = None
        for k in range(1, n_seeds):
            if source is None:
                source = load_source(tracker, run.info.run_id, registry, data_root=data_root)
            config = dataclasses.replace(source.config, seed=source.config.seed + SEED_STRIDE * k)
            if (run.info.run_id, str(config.seed)) in done:
                continue
            model, result = train_config(config, source.task, source.data, source.infos, source.tensors, registry, device=device)
            metrics = {**final_metrics(result, source.task.metric), "n_parameters": result.n_parameters, "duration_s": result.seconds}
            metrics.update(efficiency_metrics(model, result, source.tensors["validation"]))
            created.append(record_trained_run(
                tracker, run, config, metrics, role="trial", kind="seed",
                run_name=f"seed {config.seed}: {config.combination}",
            ))
    return created
