"""Writing evaluation results into MLflow: extra training runs and per-run evaluation artifacts.

Kept in one place so every evaluation (seeds, baselines, robustness, contributions) lands in the
same layout the leaderboard and the report query:

* extra runs are children of the study's parent run, with the trial's tags plus
  ``mmbench.kind`` (``seed`` or ``baseline``); seed reruns keep ``mmbench.role=trial`` (the
  leaderboard averages them with the original), baselines get ``mmbench.role=baseline``;
* evaluations of a run add metrics to it and ``evaluation/<name>.json`` / ``.png`` artifacts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    from mmbench.search.trials import TrialConfig

#: tags copied from the source trial onto runs derived from it
_COPIED = ("task", "study", "metric", "objectives", "device", "fingerprint")
ARTIFACT_DIR = "evaluation"


def record_trained_run(tracker: Tracker, source_run: Any, config: TrialConfig, metrics: dict[str, float], *,
                       role: str, kind: str, run_name: str, extra_tags: dict[str, str] | None = None) -> str:
    """Create a finished child run (of the source's study) for a configuration trained after the search.

    Args:
        tracker: the tracking store.
        source_run: the trial run it derives from (its parent, experiment and tags are reused).
        config: the configuration trained.
        metrics: final metrics (``val_score``, ``test_score``...).
        role: ``trial`` (counted on the leaderboard) or ``baseline``.
        kind: ``seed`` or ``baseline`` (tag ``mmbench.kind``).
        run_name: the run's display name.
        extra_tags: more tags.

    Returns:
        The new run's id.
    """
    tags = {f"{TAG}{k}": source_run.data.tags[f"{TAG}{k}"] for k in _COPIED if f"{TAG}{k}" in source_run.data.tags}
    tags.update({
        f"{TAG}role": role,
        f"{TAG}kind": kind,
        f"{TAG}state": "COMPLETE",
        f"{TAG}fusion": config.fusion,
        f"{TAG}combination": config.combination,
        f"{TAG}seed": str(config.seed),
        f"{TAG}derived_from": source_run.info.run_id,
        **{f"{TAG}encoder.{m}": e for m, e in config.encoders.items()},
        **(extra_tags or {}),
    })
    parent = source_run.data.tags.get("mlflow.parentRunId")
    if parent:
        tags["mlflow.parentRunId"] = parent
    run_id = tracker.create_run(source_run.info.experiment_id, tags=tags, run_name=run_name)
    tracker.log_params(run_id, config.flat_params())
    tracker.log_dict(run_id, config.to_dict(), "config.yaml")
    tracker.log_metrics(run_id, metrics)
    tracker.close(run_id)
    return run_id


def log_evaluation(tracker: Tracker, run_id: str, name: str, content: dict[str, Any], metrics: dict[str, float], figure: Any) -> None:
    """Metrics on the run plus ``evaluation/<name>.json`` and ``evaluation/<name>.png``."""
    from mmbench.tracking.artifacts import _pyplot

    tracker.log_metrics(run_id, metrics)
    tracker.log_dict(run_id, content, f"{ARTIFACT_DIR}/{name}.json")
    if figure is not None:
        tracker.log_figure(run_id, figure, f"{ARTIFACT_DIR}/{name}.png")
        _pyplot().close(figure)
    tracker.set_tags(run_id, {f"{TAG}evaluated.{name}": "true"})
