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
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    from mmbench.registry import Registry

#: configurations rerun by ``--seeds`` (the best ones by validation score)
DEFAULT_TOP_K = 3
#: seed offset between reruns of one configuration
SEED_STRIDE = 1000


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
