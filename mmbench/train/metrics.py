"""Task metrics (classification, regression), computed with torchmetrics' functional API
(imported lazily: ~5 s), and which way each metric is better."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the direction helpers are imported where torch is not yet loaded (ranking, leaderboard)
    import torch

#: metrics that get better as they get smaller; every other metric is maximised
LOWER_IS_BETTER: frozenset[str] = frozenset({"rmse", "mae", "loss"})
#: the selection metrics each task type offers (a task file's ``metric:``)
TASK_METRICS: dict[str, tuple[str, ...]] = {
    "classification": ("accuracy", "macro_f1", "auroc", "balanced_accuracy", "pr_auc"),
    "multilabel": ("micro_f1", "macro_f1", "samples_f1", "map"),
    "regression": ("rmse", "mae", "r2"),
}


def metric_direction(name: str) -> str:
    """``"minimize"`` for error metrics (``rmse``, ``mae``, ``loss``), else ``"maximize"``: the one
    rule that pruning, Optuna's direction, ranking, ensembles and the leaderboard follow.

    Example:
        >>> metric_direction("rmse"), metric_direction("accuracy")
        ('minimize', 'maximize')
    """
    return "minimize" if name in LOWER_IS_BETTER else "maximize"


def metric_sign(name: str) -> float:
    """``1.0`` for a metric to maximise, ``-1.0`` for one to minimise: ``sign * score`` is higher-is-better."""
    return -1.0 if metric_direction(name) == "minimize" else 1.0


def task_metrics(outputs: torch.Tensor, target: torch.Tensor, n_classes: int, *, threshold: float = 0.5) -> dict[str, float]:
    """The metrics of the task the target implies: a ``(N, L)`` multi-hot target is multi-label
    (``threshold`` on each label's probability), a float vector regression, integers classes."""
    if target.dim() == 2:
        return multilabel_metrics(outputs, target, threshold=threshold)
    if target.is_floating_point():
        return regression_metrics(outputs, target)
    return classification_metrics(outputs, target, n_classes)


def multilabel_metrics(logits: torch.Tensor, target: torch.Tensor, *, threshold: float = 0.5) -> dict[str, float]:
    """Micro-, macro- and samples-averaged F1 at ``threshold`` and mean average precision (``map``,
    threshold-free) of per-label sigmoid scores."""
    import torch
    from torchmetrics.functional.classification import multilabel_average_precision, multilabel_f1_score

    probs, labels = logits.float().sigmoid(), target.long()
    n_labels = labels.shape[1]
    predicted = (probs >= threshold).long()
    both = (predicted & labels).sum(dim=1).float()
    sizes = (predicted.sum(dim=1) + labels.sum(dim=1)).float()
    samples = torch.where(sizes > 0, 2 * both / sizes.clamp_min(1), torch.ones_like(sizes))  # no label, none predicted: right
    return {
        "micro_f1": multilabel_f1_score(probs, labels, num_labels=n_labels, threshold=threshold, average="micro").item(),
        "macro_f1": multilabel_f1_score(probs, labels, num_labels=n_labels, threshold=threshold, average="macro").item(),
        "samples_f1": samples.mean().item(),
        "map": multilabel_average_precision(probs, labels, num_labels=n_labels, average="macro").item(),
    }


def tune_threshold(logits: torch.Tensor, target: torch.Tensor, metric: str = "micro_f1") -> float:
    """The decision threshold (0.05 to 0.95) that maximises a multi-label F1 on these (validation) rows."""
    candidates = [round(0.05 * step, 2) for step in range(1, 20)]
    scores = [multilabel_metrics(logits, target, threshold=t)[metric if metric != "map" else "micro_f1"] for t in candidates]
    return candidates[max(range(len(candidates)), key=lambda i: (scores[i], -abs(candidates[i] - 0.5)))]


def regression_metrics(outputs: torch.Tensor, target: torch.Tensor) -> dict[str, float]:
    """RMSE, MAE and R² of ``(N, 1)`` predictions in the target's own units."""
    from torchmetrics.functional import mean_absolute_error, mean_squared_error, r2_score

    preds = outputs.float().reshape(-1)
    target = target.float().reshape(-1)
    return {
        "rmse": mean_squared_error(preds, target, squared=False).item(),
        "mae": mean_absolute_error(preds, target).item(),
        "r2": r2_score(preds, target).item() if len(target) > 1 else float("nan"),
    }


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, n_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1, AUROC (one-vs-rest macro for more than two classes), balanced accuracy
    (mean recall per class) and ``pr_auc`` (average precision; macro over classes), the last two
    telling more than accuracy on imbalanced classes.

    Args:
        logits: ``(N, n_classes)`` raw scores.
        target: ``(N,)`` class indices.
        n_classes: number of classes.
    """
    from torchmetrics.functional.classification import (
        binary_auroc,
        binary_average_precision,
        multiclass_accuracy,
        multiclass_auroc,
        multiclass_average_precision,
        multiclass_f1_score,
    )

    logits = logits.float()
    preds = logits.argmax(dim=1)
    probs = logits.softmax(dim=1)
    metrics = {
        "accuracy": multiclass_accuracy(preds, target, num_classes=n_classes, average="micro").item(),
        "macro_f1": multiclass_f1_score(preds, target, num_classes=n_classes, average="macro").item(),
        "balanced_accuracy": multiclass_accuracy(preds, target, num_classes=n_classes, average="macro").item(),
    }
    if n_classes == 2:
        metrics["auroc"] = binary_auroc(probs[:, 1], target).item()
        metrics["pr_auc"] = binary_average_precision(probs[:, 1], target).item()
    else:
        metrics["auroc"] = multiclass_auroc(probs, target, num_classes=n_classes, average="macro").item()
        metrics["pr_auc"] = multiclass_average_precision(probs, target, num_classes=n_classes, average="macro").item()
    return metrics


def probability_metrics(proba: object, labels: object, n_classes: int) -> dict[str, float]:
    """:func:`classification_metrics` of class probabilities (numpy or torch), e.g. of an ensemble or
    a classical model, so every leaderboard row is scored by the same definitions."""
    import torch

    probabilities = torch.as_tensor(proba, dtype=torch.float64)
    target = torch.as_tensor(labels, dtype=torch.long)
    return classification_metrics(probabilities.clamp_min(1e-12).log(), target, n_classes)
