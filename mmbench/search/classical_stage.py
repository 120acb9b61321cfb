"""The classical-baselines stage of a search: fit :mod:`mmbench.train.classical` models, record them.

Each model becomes a finished child run of the study (``mmbench.role=classical``) with the same
``val_*`` / ``test_*`` metrics as a trial, shown on the leaderboard as ``baseline | NAME``, and
stores its probabilities (:mod:`mmbench.tracking.predictions`) so the ensemble can use it as a
member. A model that fails is recorded as failed with its reason; the search goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmbench.tracking.layout import ROLE_CLASSICAL, TAG

if TYPE_CHECKING:
    from mmbench.data.prepared import PreparedData
    from mmbench.search.plan import SearchPlan
    from mmbench.tasks.files import Task
    from mmbench.tracking.tracker import Tracker

#: Share of the search stage's time in which classical models may still start (``--time-limit``);
#: a running one stops growing trees at twice that.
CLASSICAL_SHARE = 0.25
#: Fusion tag and combination prefix of classical rows on the leaderboard.
CLASSICAL_FUSION = "baseline"


def classical_combination(name: str) -> str:
    """The leaderboard name of a classical model (``baseline | lightgbm``)."""
    return f"{CLASSICAL_FUSION} | {name}"


@dataclass
class ClassicalRun:
    """One recorded classical model (``val_score`` is ``None`` when it failed)."""

    name: str
    run_id: str
    val_score: float | None
    test_score: float | None
    reason: str | None = None


def run_classical(tracker: Tracker, task: Task, data: PreparedData, *, experiment_id: str, parent_run_id: str | None,
                  study_name: str, seed: int = 0, start_by: float | None = None, end_by: float | None = None) -> list[ClassicalRun]:
    """Fit and record every classical model on the task's own split; none starts after ``start_by``
    and a running one stops growing at ``end_by`` (``time.monotonic()`` values)."""
    from mmbench.search.objective import failure_reason
    from mmbench.tracking.predictions import RunPredictions, log_predictions
    from mmbench.train.classical import CLASSICAL_MODELS, applicable, columns_of, fit_classical, split_frames
    from mmbench.train.metrics import probability_metrics

    done: list[ClassicalRun] = []
    labels = {split: data.labels(split).numpy() for split in ("validation", "test")}
    n_classes = len(data.schema.classes)
    columns = columns_of(data.schema, data.splits["train"])
    tables = None  # the splits as frames, built once for every model (inside the try: a failure is recorded)
    for name in [n for n in CLASSICAL_MODELS if applicable(n, columns)]:
        if start_by is not None and time.monotonic() >= start_by:
            break
        tags = {f"{TAG}task": task.name, f"{TAG}study": study_name, f"{TAG}metric": task.metric, f"{TAG}seed": str(seed),
                f"{TAG}fusion": CLASSICAL_FUSION, f"{TAG}combination": classical_combination(name),
                f"{TAG}classical": name, f"{TAG}fingerprint": data.fingerprint}
        run_id = tracker.start_derived(experiment_id, parent_run_id, role=ROLE_CLASSICAL, run_name=classical_combination(name),
                                       tags=tags, params={"model": name, "seed": seed})
        try:
            tables = split_frames(data, columns) if tables is None else tables
            fitted = fit_classical(name, data, seed=seed, deadline=end_by, tables=tables)
        except Exception as error:  # noqa: BLE001 - a baseline that cannot fit must not end the search
            tracker.finish(run_id, "FAIL", reason=failure_reason(error))
            done.append(ClassicalRun(name, run_id, None, None, failure_reason(error)))
            continue
        assert fitted is not None  # only applicable models are fitted
        metrics = {f"val_{k}": v for k, v in probability_metrics(fitted.val_proba, labels["validation"], n_classes).items()}
        metrics.update({f"test_{k}": v for k, v in probability_metrics(fitted.test_proba, labels["test"], n_classes).items()})
        metrics.update({"val_score": metrics[f"val_{task.metric}"], "test_score": metrics[f"test_{task.metric}"],
                        "duration_s": fitted.seconds})
        tracker.log_params(run_id, {f"classical.{k}": v for k, v in fitted.params.items()})
        tracker.log_metrics(run_id, metrics)
        log_predictions(tracker, run_id, RunPredictions(data.fingerprint, fitted.val_proba, labels["validation"],
                                                        fitted.test_proba, labels["test"]))
        tracker.finish(run_id, "COMPLETE")
        done.append(ClassicalRun(name, run_id, metrics["val_score"], metrics["test_score"]))
    return done


#: Presets under which the classical baselines run unless ``--no-classical`` is given.
CLASSICAL_PRESETS = ("medium", "best")


def wanted(setting: bool | None, preset_name: str | None) -> bool:
    """Whether a search fits the classical baselines: the flag, else on under ``medium`` and ``best``."""
    return setting if setting is not None else preset_name in CLASSICAL_PRESETS


def classical_before_search(tracker: Tracker, plan: SearchPlan, *, experiment_id: str, parent_run_id: str, seed: int,
                            note: Callable[[str], None]) -> list[ClassicalRun]:
    """The stage as :func:`~mmbench.search.study.run_search` runs it: once per study (a resumed study
    keeps its baselines), inside the search stage's share of ``--time-limit``; skipped with a note on a
    task that is not single-label classification (the models predict class probabilities) and under
    ``split.folds`` (one split's fit would rank beside the trials' means over folds)."""
    if plan.data.schema.task_type != "classification":
        note(f"classical baselines skipped: they predict class probabilities, and this task is {plan.data.schema.task_type}")
        return []
    if plan.data.folds:
        note("classical baselines skipped: they fit one split, the trials of split.folds are scored over folds")
        return []
    existing = tracker.trial_runs([experiment_id], role=ROLE_CLASSICAL,
                                  extra_filter=f"tags.`{TAG}study` = '{plan.study_name}' and tags.`{TAG}fingerprint` = '{plan.data.fingerprint}'")
    if existing:
        return []
    start_by = end_by = None
    if plan.budget is not None:  # the baselines may start in the first part of the search stage only: trials need the rest
        share = CLASSICAL_SHARE * plan.budget.stage_seconds("search")
        end_by = min(plan.budget.stage_deadline("search"), time.monotonic() + 2 * share)
        start_by = min(end_by, time.monotonic() + share)
    done = run_classical(tracker, plan.task, plan.data, experiment_id=experiment_id, parent_run_id=parent_run_id,
                         study_name=plan.study_name, seed=seed, start_by=start_by, end_by=end_by)
    for run in done:
        outcome = f"failed ({run.reason})" if run.val_score is None else f"val {run.val_score:.4f}, test {run.test_score:.4f}"
        note(f"{classical_combination(run.name)}: {outcome}")
    return done
