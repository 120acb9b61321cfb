"""The class balance of a search's splits and the majority-class score, recorded on the study's parent run.

A model that learnt nothing but the prior scores what always answering the largest class scores
(on an 82/18 set: 0.82 accuracy), which reads like a result. So a search records, once, each
split's class counts (tag ``mmbench.class_balance``) and the validation metrics of the
majority-class predictor (metrics ``majority_val_<metric>``); the leaderboard prints the balance
and flags a row whose validation score never leaves that score (:func:`never_leaves`).

The majority-class predictor answers every row with the train split's prior, scored by the
project's own metric functions (:mod:`mmbench.train.metrics`): classification, the class
frequencies (scikit-learn's ``DummyClassifier(strategy="prior")``, the classical ``majority``
baseline: accuracy is the validation share of train's largest class); multi-label, each label's
train frequency with the decision threshold tuned on validation as a trial's is; regression,
the train mean. Under ``split.folds`` it is scored per fold and averaged, as a trial is.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mmbench.tracking.layout import ROLE_STUDY, TAG

if TYPE_CHECKING:
    from mmbench.data.prepared import PreparedData
    from mmbench.tracking.tracker import Tracker

#: Parent-run tag: JSON ``{"task_type": ..., "splits": {split: {"rows": n, "classes": {...}}}}``.
BALANCE_TAG = f"{TAG}class_balance"
#: Parent-run metrics: the majority-class predictor's validation metrics (``majority_val_accuracy``...).
MAJORITY_PREFIX = "majority_val_"
#: A score at most this far above the majority-class score (absolute; relative to the score's size
#: when that is over 1, e.g. an rmse in the target's units) has not left it.
MAJORITY_TOLERANCE = 0.01
#: The tag keeps at most this many characters (:meth:`Tracker.set_tags` cuts longer values).
_TAG_LIMIT = 5000


@dataclass
class Balance:
    """One study's record: task type, per-split counts (:func:`mmbench.data.inspection.class_balance`,
    perhaps cut to the largest classes) and the majority-class predictor's validation metrics."""

    task_type: str
    splits: dict[str, dict[str, Any]]
    majority: dict[str, float] = field(default_factory=dict)


def record_balance(tracker: Tracker, run_id: str, data: PreparedData, *, metric: str) -> None:
    """Tag the study's parent run with the class balance and log the majority-class metrics
    (``metric``: the task's, which a multi-label threshold is tuned for)."""
    from mmbench.data.inspection import class_balance

    tracker.set_tags(run_id, {BALANCE_TAG: _fitting_json(data.schema.task_type, class_balance(data))})
    tracker.log_metrics(run_id, {MAJORITY_PREFIX + name: value for name, value in majority_metrics(data, metric=metric).items()})


def majority_metrics(data: PreparedData, *, metric: str) -> dict[str, float]:
    """The validation metrics of the majority-class (prior) predictor; under ``split.folds`` the mean
    over the folds (each fold's prior from its own train rows), as a k-fold trial's score is."""
    import statistics

    import torch

    train, validation = data.labels("train"), data.labels("validation")
    folds = getattr(data, "folds", ())
    if not folds:
        return _prior_scores(data, train, validation, metric)
    pool = torch.cat([train, validation])  # fold positions count train rows, then validation rows
    per_fold = []
    for fold in folds:
        held = torch.zeros(len(pool), dtype=torch.bool)
        held[torch.as_tensor(fold, dtype=torch.long)] = True
        per_fold.append(_prior_scores(data, pool[~held], pool[held], metric))
    scored = [scores for scores in per_fold if scores]
    return {name: statistics.fmean(scores[name] for scores in scored) for name in scored[0]} if scored else {}


def _prior_scores(data: PreparedData, train: Any, validation: Any, metric: str) -> dict[str, float]:
    """Metrics on ``validation`` of answering every row with ``train``'s prior; empty without rows."""
    import torch

    from mmbench.train.metrics import multilabel_metrics, probability_metrics, regression_metrics, tune_threshold

    if len(validation) == 0 or len(train) == 0:
        return {}
    task_type, n_val = data.schema.task_type, len(validation)
    if task_type == "regression":
        return regression_metrics(train.float().mean().expand(n_val, 1), validation)
    if task_type == "multilabel":
        prevalence = train.float().mean(dim=0).clamp(1e-6, 1 - 1e-6)
        logits = torch.logit(prevalence).expand(n_val, -1)
        threshold = tune_threshold(logits, validation, metric)
        return {**multilabel_metrics(logits, validation, threshold=threshold), "threshold": threshold}
    n_classes = len(data.schema.classes)
    prior = torch.bincount(train, minlength=n_classes).double() / len(train)
    return probability_metrics(prior.expand(n_val, -1), validation, n_classes)


def study_balances(tracker: Tracker, experiment_ids: list[str]) -> dict[str, Balance]:
    """Parent run id -> its :class:`Balance`, for the studies that recorded one (older stores: none)."""
    balances = {}
    for run in tracker.search_runs(experiment_ids, f"tags.`{TAG}role` = '{ROLE_STUDY}'"):
        text = run.data.tags.get(BALANCE_TAG)
        try:
            record = json.loads(text) if text else None
        except json.JSONDecodeError:
            record = None
        if isinstance(record, dict) and isinstance(record.get("splits"), dict):
            majority = {name[len(MAJORITY_PREFIX):]: value for name, value in run.data.metrics.items() if name.startswith(MAJORITY_PREFIX)}
            balances[run.info.run_id] = Balance(str(record.get("task_type", "?")), record["splits"], majority)
    return balances


def majority_tolerance(majority: float) -> float:
    """How far above the majority-class score a score must be to have left it (:data:`MAJORITY_TOLERANCE`)."""
    return MAJORITY_TOLERANCE * max(1.0, abs(majority))


def never_leaves(score: float, majority: float, metric: str) -> bool:
    """Whether a validation score is no better than the majority-class score by more than
    :func:`majority_tolerance` (a worse score has not left it either)."""
    from mmbench.train.metrics import metric_sign

    return metric_sign(metric) * (score - majority) <= majority_tolerance(majority)


def task_balance_lines(task_name: str, summary: Mapping[str, Any] | None) -> list[str]:
    """A task's class balance per split and its majority-class score as text lines (the leaderboard's
    ``balances`` entry of the task; no lines when nothing was recorded)."""
    from mmbench.data.inspection import balance_lines as split_lines

    if not summary:
        return []
    what = "target" if summary["task_type"] == "regression" else "class balance"
    lines = [f"{task_name}: {what} per split" if summary["splits"] else f"{task_name}:"]
    lines += [f"  {line}" for line in split_lines(summary["splits"])]
    majority = summary["majority"]
    if majority["val_score"] is not None:
        predictor = "train-mean predictor" if summary["task_type"] == "regression" else "majority-class predictor"
        lines.append(f"  {predictor}: val {majority['metric']} {majority['val_score']:.4f} ({majority['from']}); "
                     f"≈majority marks rows not better than it by more than {majority['tolerance']:.4g}")
    return lines


def _fitting_json(task_type: str, splits: Mapping[str, Mapping[str, Any]]) -> str:
    """The record as JSON within the tag's limit: the smallest classes give way first (``"more"``
    counts the classes left out)."""
    n_kept = max((len(entry.get("classes", {})) for entry in splits.values()), default=0)
    while True:
        kept = {}
        for name, entry in splits.items():
            if "classes" not in entry:
                kept[name] = dict(entry)
                continue
            classes = list(entry["classes"].items())
            kept[name] = {"rows": entry["rows"], "classes": dict(classes[:n_kept]),
                          **({"more": len(classes) - n_kept} if len(classes) > n_kept else {})}
        text = json.dumps({"task_type": task_type, "splits": kept}, separators=(",", ":"))
        if len(text) <= _TAG_LIMIT or n_kept == 0:
            return text
        n_kept //= 2
