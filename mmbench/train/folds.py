"""k-fold cross-validation of one configuration (``split: {folds: K, repeats: R}``).

A trial trains K x R models, each on the other folds' rows and validated on its fold
(:func:`~mmbench.data.prepared.fold_splits`: row selections of the tensors the trial already
has, so nothing is preprocessed or encoded again); the test split is the held-out one of every
fold. What the trial is ranked by is the mean over folds, so ranking, ensembles and the
leaderboard read k-fold runs as any other; the per-fold scores and their spread are recorded
beside it (:func:`fold_scores`, :func:`fold_summary`).
"""

from __future__ import annotations

import dataclasses
import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from mmbench.data.prepared import SplitTensors, fold_splits
from mmbench.train.loop import EpochReport, FitResult, TrainSettings, past_deadline, fit, predict_logits

if TYPE_CHECKING:
    import numpy as np

    from mmbench.train.model import MultimodalModel


@dataclass
class FoldsResult:
    """The fits of every fold and what a trial records of them.

    Attributes:
        fits: one :class:`FitResult` per fold run (fewer than K x R when the time limit ended it).
        result: their mean validation and test metrics as one :class:`FitResult` (best epoch:
            the rounded mean; history: every fold's epochs, numbered across folds).
        model: the last fold's trained model (the one a trial saves and times).
        validation: the last fold's validation rows.
        oof_proba: classification with ``probabilities``: each train + validation row's class
            probabilities from the model(s) that did not train on it (mean over repeats), in
            train-then-validation order; ``None`` otherwise or when not every fold ran.
        oof_labels: those rows' labels.
        test_proba: the folds' mean test probabilities (with ``oof_proba``).
    """

    fits: list[FitResult]
    result: FitResult
    model: MultimodalModel
    validation: SplitTensors
    oof_proba: np.ndarray | None = None
    oof_labels: np.ndarray | None = None
    test_proba: np.ndarray | None = None


def fit_folds(build: Callable[[], MultimodalModel], tensors: Mapping[str, SplitTensors], folds: Sequence[np.ndarray],
              settings: TrainSettings, *, n_classes: int, on_epoch: Callable[[EpochReport], None] | None = None,
              on_fold: Callable[[int, list[FitResult]], None] | None = None, probabilities: bool = False) -> FoldsResult:
    """Fit a fresh model from ``build()`` on each fold.

    Args:
        build: an untrained model of the configuration (the same initialisation every fold).
        tensors: the trial's train / validation / test tensors.
        folds: validation rows of each fold (:attr:`~mmbench.data.prepared.PreparedData.folds`).
        settings: optimisation settings, shared by the folds (its deadline ends the folds too).
        n_classes: outputs of the model.
        on_epoch: epoch reports, numbered across folds (a fold's first epoch follows the last
            fold's last), so tracking steps stay unique within the trial.
        on_fold: called with the fold's index and the fits so far after each fold (pruning:
            it may raise to stop).
        probabilities: collect out-of-fold and test class probabilities (for ensembles).
    """
    fits: list[FitResult] = []
    n_rows = len(tensors["train"]) + len(tensors["validation"])
    oof = torch.zeros(n_rows, n_classes) if probabilities else None
    seen = torch.zeros(n_rows)
    test = None
    offset, stopped = 0, None
    for index, split in enumerate(fold_splits(tensors, folds)):
        if fits and past_deadline(settings.deadline):
            stopped = "time_limit"
            break
        model = build()

        def renumbered(report: EpochReport, base: int = offset) -> None:
            if on_epoch is not None:
                on_epoch(dataclasses.replace(report, epoch=base + report.epoch))

        fitted = fit(model, split, settings, n_classes=n_classes, on_epoch=renumbered)
        fitted.history = [dataclasses.replace(report, epoch=offset + report.epoch) for report in fitted.history]
        offset += len(fitted.history)
        fits.append(fitted)
        validation = split["validation"]
        if oof is not None:
            rows = torch.as_tensor(folds[index], dtype=torch.long)
            oof[rows] += predict_logits(model, validation).softmax(dim=1).cpu()
            seen[rows] += 1
            fold_test = predict_logits(model, split["test"]).softmax(dim=1).cpu()
            test = fold_test if test is None else test + fold_test
        if on_fold is not None:
            on_fold(index, fits)
        if fitted.stopped:
            stopped = fitted.stopped
            break
    outcome = FoldsResult(fits, _mean_result(fits, stopped), model, validation)
    if oof is not None and test is not None and bool((seen > 0).all()) and len(fits) == len(folds):
        labels = torch.cat([tensors["train"].labels, tensors["validation"].labels])
        outcome.oof_proba = (oof / seen.unsqueeze(1)).numpy()
        outcome.oof_labels, outcome.test_proba = labels.cpu().numpy(), (test / len(fits)).numpy()
    return outcome


def fold_scores(fitted: FitResult, index: int) -> dict[str, float]:
    """One fold's run metrics: ``val_<name>_fold<index>`` and ``test_<name>_fold<index>``."""
    scores = {f"val_{k}_fold{index}": v for k, v in fitted.validation.items()}
    scores.update({f"test_{k}_fold{index}": v for k, v in fitted.test.items()})
    return scores


def fold_summary(fits: Sequence[FitResult]) -> dict[str, float]:
    """``val_<name>_mean`` / ``_std`` and ``test_<name>_mean`` / ``_std`` over the folds (std with
    two folds or more: the sample standard deviation), and ``n_folds``."""
    summary: dict[str, float] = {"n_folds": len(fits)}
    for prefix, values in (("val", [f.validation for f in fits]), ("test", [f.test for f in fits])):
        for name in values[0]:
            column = [v[name] for v in values if name in v]
            summary[f"{prefix}_{name}_mean"] = statistics.fmean(column)
            if len(column) > 1:
                summary[f"{prefix}_{name}_std"] = statistics.stdev(column)
    return summary


def _mean_result(fits: list[FitResult], stopped: str | None) -> FitResult:
    def mean(dicts: list[dict[str, float]]) -> dict[str, float]:
        return {name: statistics.fmean(d[name] for d in dicts) for name in dicts[0] if all(name in d for d in dicts)}

    return FitResult(
        best_epoch=int(round(statistics.fmean(f.best_epoch for f in fits))),
        validation=mean([f.validation for f in fits]),
        test=mean([f.test for f in fits]),
        history=[report for f in fits for report in f.history],
        n_parameters=fits[-1].n_parameters,
        seconds=sum(f.seconds for f in fits),
        device=fits[-1].device,
        stopped=stopped,
    )
