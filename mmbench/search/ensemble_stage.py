"""The ensemble of a study: gather finished runs' stored predictions, select on validation, record.

Candidates are the task's finished trials and classical baselines (of one study, or of every
study of the task) whose stored predictions (:mod:`mmbench.tracking.predictions`) are for the
same split as the best run's (same data fingerprint). Selection
(:func:`~mmbench.search.ensemble.cross_checked_selection`: greedy by validation log likelihood,
greedy by the task metric or the best single candidate, whichever does best on held-out folds of
validation) reads validation only; the chosen bag is then scored once on test and logged as its own
run (``mmbench.role=ensemble``) with its members and weights (``ensemble.json``), shown on the
leaderboard as ``ensemble | N members``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError
from mmbench.search.ensemble import (
    DEFAULT_ROUNDS,
    CrossChecked,
    combine,
    cross_checked_selection,
    log_likelihood,
    metric_score,
    select_by,
)
from mmbench.tracking.layout import ENSEMBLE_FILE, ROLE_CLASSICAL, ROLE_ENSEMBLE, ROLE_TRIAL, TAG

if TYPE_CHECKING:
    from mmbench.search.plan import SearchPlan
    from mmbench.search.presets import Preset
    from mmbench.tracking.predictions import RunPredictions
    from mmbench.tracking.tracker import Tracker

ENSEMBLE_FUSION = "ensemble"
#: How the bag was chosen: ``cross_checked`` (searches since 2026-12-04, second session), or, as
#: recorded before, greedy by ``log_likelihood`` or by the task ``metric`` (ensembles whose
#: ``ensemble.json`` has no ``selected_by``).
SELECTED_BY = ("cross_checked", "log_likelihood", "metric")
#: Roles of the runs an ensemble may take as members.
MEMBER_ROLES = (ROLE_TRIAL, ROLE_CLASSICAL)


@dataclass
class Member:
    """A candidate run and its stored predictions."""

    run_id: str
    role: str
    combination: str
    predictions: RunPredictions


@dataclass
class EnsembleResult:
    """A recorded ensemble: its run, members (run id -> weight) and scores."""

    run_id: str
    weights: dict[str, float]
    val_score: float
    test_score: float
    n_candidates: int
    way: str


def describe_way(way: str) -> str:
    """How the bag was chosen, in words for a progress line."""
    return {"log_likelihood": "greedy by validation log likelihood", "metric": "greedy by the task metric",
            "best_single": "the best single run: no greedy selection beat it by more than one standard error "
                           "on held-out validation folds"}.get(way, way)


def ensemble_combination(n_members: int) -> str:
    return f"{ENSEMBLE_FUSION} | {n_members} member{'s' if n_members != 1 else ''}"


def gather_members(tracker: Tracker, experiment_id: str, *, study: str | None = None) -> list[Member]:
    """Finished trials and classical runs with stored predictions, all of the best run's split."""
    from mmbench.tracking.predictions import load_predictions

    extra = f"tags.`{TAG}state` = 'COMPLETE'" + (f" and tags.`{TAG}study` = '{study}'" if study else "")
    runs = [(role, run) for role in MEMBER_ROLES for run in tracker.trial_runs([experiment_id], extra_filter=extra, role=role)]
    runs = [(role, run) for role, run in runs if "val_score" in run.data.metrics]
    runs.sort(key=lambda pair: (-pair[1].data.metrics["val_score"], pair[1].info.run_id))  # best first: its split decides
    members: list[Member] = []
    for role, run in runs:
        stored = load_predictions(tracker, run.info.run_id)
        if stored is None or (members and stored.fingerprint != members[0].predictions.fingerprint):
            continue
        members.append(Member(run.info.run_id, role, run.data.tags.get(f"{TAG}combination", "?"), stored))
    members.sort(key=lambda m: m.run_id)  # a stable candidate order: the seed alone fixes ties
    return members


def select_and_score(members: list[Member], *, metric: str, n_rounds: int, seed: int,
                     selected_by: str) -> tuple[CrossChecked, list[tuple[Member, float]], dict[str, float]]:
    """Select on validation (as :data:`SELECTED_BY` names), then score the chosen bag on validation
    and (once) on test."""
    from mmbench.train.metrics import probability_metrics

    first = members[0].predictions
    n_classes = first.val_proba.shape[1]
    probas, score = [m.predictions.val_proba for m in members], metric_score(metric, n_classes)
    if selected_by == SELECTED_BY[0]:
        checked = cross_checked_selection(probas, first.val_labels, metric=score, n_rounds=n_rounds, seed=seed)
    else:
        checked = CrossChecked(selected_by, select_by(selected_by, probas, first.val_labels, metric=score,
                                                      n_rounds=n_rounds, seed=seed), {})
    chosen = [(members[i], checked.selection.weights[i]) for i in checked.selection.members]
    weights = [w for _, w in chosen]
    val = combine([m.predictions.val_proba for m, _ in chosen], weights)
    test = combine([m.predictions.test_proba for m, _ in chosen], weights)
    metrics = {f"val_{k}": v for k, v in probability_metrics(val, first.val_labels, n_classes).items()}
    metrics.update({f"test_{k}": v for k, v in probability_metrics(test, first.test_labels, n_classes).items()})
    metrics.update({"val_score": metrics[f"val_{metric}"], "test_score": metrics[f"test_{metric}"],
                    "val_log_loss": -log_likelihood(first.val_labels, val)})
    metrics.update({f"held_out_{way}": value for way, value in checked.held_out.items()})
    return checked, chosen, metrics


def build_ensemble(tracker: Tracker, experiment_id: str, *, task: str, metric: str, study: str | None = None,
                   parent_run_id: str | None = None, seed: int = 0, n_rounds: int = DEFAULT_ROUNDS,
                   deadline: float | None = None) -> EnsembleResult | None:
    """Select, score once on test and record the ensemble; ``None`` when fewer than two candidates
    exist or ``deadline`` (a ``time.monotonic()`` value) has passed.

    Raises:
        ConfigError: an unsupported metric.
    """
    started = time.perf_counter()
    if deadline is not None and time.monotonic() >= deadline:
        return None
    members = gather_members(tracker, experiment_id, study=study)
    if len(members) < 2:
        return None
    checked, chosen, metrics = select_and_score(members, metric=metric, n_rounds=n_rounds, seed=seed, selected_by=SELECTED_BY[0])
    metrics.update({"n_members": len(chosen), "n_candidates": len(members), "duration_s": time.perf_counter() - started})
    combination = ensemble_combination(len(chosen))
    tags = {f"{TAG}task": task, f"{TAG}metric": metric, f"{TAG}seed": str(seed), f"{TAG}fusion": ENSEMBLE_FUSION,
            f"{TAG}combination": combination, f"{TAG}fingerprint": members[0].predictions.fingerprint,
            f"{TAG}ensemble_way": checked.way,
            **({f"{TAG}study": study} if study else {})}
    run_id = tracker.start_derived(experiment_id, parent_run_id, role=ROLE_ENSEMBLE, run_name=combination, tags=tags,
                                   params={"n_rounds": n_rounds, "seed": seed, "members": ",".join(m.run_id for m, _ in chosen)})
    tracker.log_metrics(run_id, metrics)
    tracker.log_dict(run_id, {
        "metric": metric, "selected_by": SELECTED_BY[0], "way": checked.way, "held_out": checked.held_out,
        "n_rounds": n_rounds, "seed": seed, "trajectory": list(checked.selection.trajectory),
        "members": [{"run_id": m.run_id, "role": m.role, "combination": m.combination, "weight": w} for m, w in chosen],
        "candidates": [m.run_id for m in members],
    }, ENSEMBLE_FILE)
    tracker.finish(run_id, "COMPLETE")
    return EnsembleResult(run_id, {m.run_id: w for m, w in chosen}, metrics["val_score"], metrics["test_score"], len(members),
                          checked.way)


def ensemble_record(tracker: Tracker, run: Any) -> dict[str, Any]:
    """The ``ensemble.json`` of a recorded ensemble run (members with weights, candidates, seed, rounds).

    Raises:
        ConfigError: the run is not an ensemble or its ``ensemble.json`` is missing.
    """
    import json
    import tempfile
    from pathlib import Path

    if run.data.tags.get(f"{TAG}role") != ROLE_ENSEMBLE:
        raise ConfigError(f"run '{run.info.run_id}' is not an ensemble (tag {TAG}role={run.data.tags.get(f'{TAG}role')})")
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = tracker.download_artifact(run.info.run_id, ENSEMBLE_FILE, tmp)
        except Exception:  # noqa: BLE001 - artifact stores raise different types for a missing file
            raise ConfigError(f"ensemble run '{run.info.run_id}' has no {ENSEMBLE_FILE}") from None
        return json.loads(Path(local).read_text(encoding="utf-8"))


def reselect(tracker: Tracker, run: Any) -> tuple[dict[str, float], dict[str, float]]:
    """Selection rerun on the recorded candidates' stored predictions with the recorded seed and rounds.

    Returns:
        The weights (member run id -> weight) and final metrics it gives.
    Raises:
        ConfigError: a candidate's stored predictions are gone.
    """
    from mmbench.tracking.predictions import load_predictions

    record = ensemble_record(tracker, run)
    members = []
    for run_id in record["candidates"]:
        stored = load_predictions(tracker, run_id)
        if stored is None:
            raise ConfigError(f"ensemble run '{run.info.run_id}': candidate run '{run_id}' has no stored predictions")
        members.append(Member(run_id, "", "", stored))
    _, chosen, metrics = select_and_score(members, metric=record["metric"], n_rounds=int(record["n_rounds"]), seed=int(record["seed"]),
                                          selected_by=record.get("selected_by", "metric"))
    return {m.run_id: w for m, w in chosen}, metrics


def wanted(setting: bool | None, preset: Preset | None, objectives: tuple[str, ...]) -> bool:
    """Whether a search ends with its ensemble: never for a Pareto search (one score cannot rank it),
    else the flag, else on under any preset."""
    if len(objectives) > 1:
        return False
    return setting if setting is not None else preset is not None


def ensemble_after_search(tracker: Tracker, plan: SearchPlan, *, experiment_id: str, parent_run_id: str, seed: int,
                          note: Callable[[str], None]) -> EnsembleResult | None:
    """The stage as :func:`~mmbench.search.study.run_search` runs it: the study's ensemble, inside the
    ensemble stage's share of ``--time-limit`` (skipped with a note when none is left, and on a task
    that is not single-label classification: it combines class probabilities)."""
    if plan.data.schema.task_type != "classification":
        note(f"ensemble skipped: it combines class probabilities, and this task is {plan.data.schema.task_type}")
        return None
    deadline = plan.budget.stage_deadline("ensemble") if plan.budget is not None else None
    if deadline is not None and time.monotonic() >= deadline:
        note("ensemble skipped: no time left of --time-limit")
        return None
    result = build_ensemble(tracker, experiment_id, task=plan.task.name, metric=plan.task.metric, study=plan.study_name,
                            parent_run_id=parent_run_id, seed=seed, deadline=deadline)
    if result is not None:
        note(f"{ensemble_combination(len(result.weights))} of {result.n_candidates} candidates ({describe_way(result.way)}): "
             f"val {result.val_score:.4f}, test {result.test_score:.4f}")
    return result
