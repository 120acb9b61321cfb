"""Classification metrics, computed with torchmetrics' functional API (imported lazily: ~5 s)."""

from __future__ import annotations

import torch


def classification_metrics(logits: torch.Tensor, target: torch.Tensor, n_classes: int) -> dict[str, float]:
    """Accuracy, macro-F1 and AUROC (one-vs-rest macro for more than two classes).

    Args:
        logits: ``(N, n_classes)`` raw scores.
        target: ``(N,)`` class indices.
        n_classes: number of classes.
    """
    from torchmetrics.functional.classification import (
        binary_auroc,
        multiclass_accuracy,
        multiclass_auroc,
        multiclass_f1_score,
    )

    logits = logits.float()
    preds = logits.argmax(dim=1)
    probs = logits.softmax(dim=1)
    metrics = {
        "accuracy": multiclass_accuracy(preds, target, num_classes=n_classes, average="micro").item(),
        "macro_f1": multiclass_f1_score(preds, target, num_classes=n_classes, average="macro").item(),
    }
    if n_classes == 2:
        metrics["auroc"] = binary_auroc(probs[:, 1], target).item()
    else:
        metrics["auroc"] = multiclass_auroc(probs, target, num_classes=n_classes, average="macro").item()
    return metrics
