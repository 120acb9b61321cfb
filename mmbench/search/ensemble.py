"""Ensemble selection (Caruana et al., 2004) on validation probabilities: pure functions on arrays.

Greedy forward selection with replacement: each round adds the candidate whose addition scores
best on validation; a model picked ``k`` times gets weight ``k / rounds``. The bag kept is the
best prefix of the rounds, so the ensemble never scores below its best member on validation by
the selection score. A search selects by :func:`log_likelihood`, not by the task metric: on a few
hundred validation rows greedy accuracy fits their noise (``benchmarks/ensemble_selection.py``).
Ties are broken by a seeded random generator, so a seed fixes the result. Nothing here sees a
test label: scoring on test is the caller's, once, after selection.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmbench.errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

#: Rounds of greedy selection (AutoGluon's default is 25 as well).
DEFAULT_ROUNDS = 25

Score = Callable[["np.ndarray", "np.ndarray"], float]


@dataclass(frozen=True)
class Selection:
    """The chosen bag.

    Attributes:
        weights: one weight per candidate (0 for those never picked); they sum to 1.
        val_score: the ensemble's validation score (by the selection score).
        trajectory: that score after each round.
    """

    weights: tuple[float, ...]
    val_score: float
    trajectory: tuple[float, ...]

    @property
    def members(self) -> list[int]:
        """Indices of the candidates with a non-zero weight."""
        return [i for i, w in enumerate(self.weights) if w > 0]


def metric_score(metric: str, n_classes: int) -> Score:
    """``score(labels, proba)`` by the task metric, defined as for trials (:mod:`mmbench.train.metrics`)."""
    from mmbench.train.metrics import probability_metrics

    known = ("accuracy", "macro_f1", "auroc")
    if metric not in known:
        raise ConfigError(f"ensemble: metric '{metric}' is not supported; supported: {', '.join(known)}")
    if metric == "accuracy":  # the share of argmax hits, as probability_metrics counts it, without its four other metrics
        import numpy as np

        return lambda labels, proba: float(np.mean(np.asarray(proba).argmax(axis=1) == np.asarray(labels)))
    return lambda labels, proba: probability_metrics(proba, labels, n_classes)[metric]


def log_likelihood(labels: np.ndarray, proba: np.ndarray) -> float:
    """Mean log probability of the true class (minus the log loss; higher is better).

    Smooth where accuracy is a step: a candidate is added only if it makes the averaged
    probabilities better calibrated on every row, not because it flips a few of them to the
    right class, so fewer, stronger members are chosen and they hold up on rows selection never saw.
    """
    import numpy as np

    rows = np.arange(len(labels))
    return float(np.log(np.clip(np.asarray(proba, dtype=np.float64)[rows, np.asarray(labels)], 1e-12, None)).mean())


def check_single_label(run_metrics: Iterable[Mapping[str, float]], where: str) -> None:
    """Refuse runs of a multi-label or regression task (told by the ``val_*`` metrics they recorded):
    selection averages single-label class probabilities, which those tasks' trials do not store.

    Raises:
        ConfigError: one line naming ``where`` and the task type.
    """
    from mmbench.train.metrics import TASK_METRICS

    for metrics in run_metrics:
        for task_type in ("multilabel", "regression"):
            if all(f"val_{name}" in metrics for name in TASK_METRICS[task_type]):
                raise ConfigError(f"{where}: a {task_type} task cannot be ensembled (ensembles average single-label "
                                  "class probabilities; use the best trial)")


def combine(probas: Sequence[np.ndarray], weights: Sequence[float]) -> np.ndarray:
    """The weighted average of the candidates' probabilities."""
    import numpy as np

    total = np.zeros_like(np.asarray(probas[0], dtype=np.float64))
    for proba, weight in zip(probas, weights):
        if weight:
            total += weight * np.asarray(proba, dtype=np.float64)
    return total / max(sum(weights), 1e-12)


def select_ensemble(val_probas: Sequence[np.ndarray], val_labels: np.ndarray, *, score: Score,
                    n_rounds: int = DEFAULT_ROUNDS, n_init: int = 0, seed: int = 0) -> Selection:
    """Greedy forward selection with replacement on validation predictions.

    Args:
        val_probas: per candidate, ``(n_rows, n_classes)`` validation probabilities.
        val_labels: ``(n_rows,)`` validation class indices.
        score: ``score(labels, proba)``, higher is better (:func:`metric_score`).
        n_rounds: rounds of selection (the bag size before the best prefix is kept).
        n_init: sorted initialisation: start from the ``n_init`` best single candidates.
        seed: breaks ties between equally good additions.

    Raises:
        ConfigError: no candidates, shapes that differ, or a bad round count.
    """
    import numpy as np

    if not val_probas:
        raise ConfigError("ensemble: no candidate has validation predictions")
    if n_rounds < 1 or n_init < 0:
        raise ConfigError(f"ensemble: n_rounds must be >= 1 and n_init >= 0, got {n_rounds} and {n_init}")
    probas = [np.asarray(p, dtype=np.float64) for p in val_probas]
    if any(p.shape != probas[0].shape for p in probas):
        raise ConfigError(f"ensemble: candidates' validation predictions differ in shape: {sorted({p.shape for p in probas})}")
    rng = np.random.default_rng(seed)
    counts = np.zeros(len(probas), dtype=np.int64)
    total = np.zeros_like(probas[0])
    singles = [score(val_labels, p) for p in probas]
    for index in sorted(range(len(probas)), key=lambda i: (-singles[i], i))[:n_init]:
        counts[index] += 1
        total += probas[index]
    trajectory: list[float] = []
    best_counts, best_score = counts.copy(), -np.inf
    if counts.sum():
        best_score = score(val_labels, total / counts.sum())
    for _ in range(n_rounds):
        size = counts.sum() + 1
        candidates = [score(val_labels, (total + p) / size) for p in probas]
        top = max(candidates)
        chosen = int(rng.choice([i for i, value in enumerate(candidates) if value == top]))
        counts[chosen] += 1
        total += probas[chosen]
        trajectory.append(top)
        if top > best_score:  # the earliest best prefix: fewer members for the same score
            best_counts, best_score = counts.copy(), top
    weights = tuple(float(c) / float(best_counts.sum()) for c in best_counts)
    return Selection(weights, float(best_score), tuple(float(t) for t in trajectory))
