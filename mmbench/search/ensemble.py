"""Ensemble selection (Caruana et al., 2004) on validation probabilities: pure functions on arrays.

Greedy forward selection with replacement: each round adds the candidate whose addition scores
best on validation; a model picked ``k`` times gets weight ``k / rounds``. The bag kept is the
best prefix of the rounds, so the ensemble never scores below its best member on validation by
the selection score. On a few hundred validation rows any one way of choosing can fit their noise
(``benchmarks/ensemble_selection.py``), so a search cross-checks (:func:`cross_checked_selection`):
the best single candidate, greedy by :func:`log_likelihood` and greedy by the task metric each
choose on part of the validation rows and are scored on the rest, and the best single candidate is
kept unless an ensemble beats it there clearly. Ties are broken by a seeded random generator, so a
seed fixes the result. Nothing here sees a test label: scoring on test is the caller's, once, after
selection.
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
#: The ways :func:`cross_checked_selection` compares by default, simplest (fewest members) first.
WAYS = ("best_single", "log_likelihood", "metric")
#: Folds of the validation rows that cross-checking holds out in turn, and how often it reshuffles them.
DEFAULT_FOLDS = 5
DEFAULT_REPEATS = 2

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
    """``score(labels, proba)`` by the task metric, defined as for trials (:mod:`mmbench.train.metrics`).

    Computed with numpy, not through :func:`~mmbench.train.metrics.probability_metrics` (which
    computes five metrics with torchmetrics, ~5 ms a call): cross-checked selection scores a
    candidate thousands of times, which took a minute on 2 cores for a macro-F1 task. The
    definitions are torchmetrics' (tested against it): macro-F1 averages over the classes that
    occur in the labels or the predictions; AUROC is the Mann-Whitney statistic (ties count a
    half), one-vs-rest and macro-averaged for more than two classes, and falls back to
    torchmetrics on rows that lack a class.
    """
    known = ("accuracy", "macro_f1", "auroc")
    if metric not in known:
        raise ConfigError(f"ensemble: metric '{metric}' is not supported; supported: {', '.join(known)}")
    return {"accuracy": _accuracy, "macro_f1": _macro_f1, "auroc": _auroc}[metric](n_classes)


def _accuracy(n_classes: int) -> Score:
    import numpy as np

    return lambda labels, proba: float(np.mean(np.asarray(proba).argmax(axis=1) == np.asarray(labels)))


def _macro_f1(n_classes: int) -> Score:
    import numpy as np

    def score(labels: np.ndarray, proba: np.ndarray) -> float:
        labels, predicted = np.asarray(labels), np.asarray(proba).argmax(axis=1)
        hits = np.bincount(labels[predicted == labels], minlength=n_classes)
        both = np.bincount(predicted, minlength=n_classes) + np.bincount(labels, minlength=n_classes)  # 2tp + fp + fn
        seen = both > 0
        return float(np.mean(2 * hits[seen] / both[seen])) if seen.any() else 0.0

    return score


def _auroc(n_classes: int) -> Score:
    import numpy as np
    from scipy.stats import rankdata

    from mmbench.train.metrics import probability_metrics

    def one_vs_rest(positive: np.ndarray, scores: np.ndarray) -> float:
        n_positive = int(positive.sum())
        ranks = rankdata(scores)
        return float((ranks[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * (len(scores) - n_positive)))

    def score(labels: np.ndarray, proba: np.ndarray) -> float:
        labels, proba = np.asarray(labels), np.asarray(proba, dtype=np.float64)
        if len(np.unique(labels)) < n_classes:  # a class without rows: torchmetrics' convention for it
            return probability_metrics(proba, labels, n_classes)["auroc"]
        if n_classes == 2:
            return one_vs_rest(labels == 1, proba[:, 1])
        return float(np.mean([one_vs_rest(labels == c, proba[:, c]) for c in range(n_classes)]))

    return score


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


def best_single(val_probas: Sequence[np.ndarray], val_labels: np.ndarray, *, score: Score) -> Selection:
    """The one candidate that scores best on validation (the first of equals): what a leaderboard
    ranked by validation picks without an ensemble."""
    singles = [score(val_labels, proba) for proba in val_probas]
    top = max(range(len(singles)), key=lambda i: (singles[i], -i))
    return Selection(tuple(1.0 if i == top else 0.0 for i in range(len(singles))), float(singles[top]), (float(singles[top]),))


@dataclass(frozen=True)
class CrossChecked:
    """The result of :func:`cross_checked_selection`.

    Attributes:
        way: the way that chose the bag (one of :data:`WAYS`).
        selection: the bag that way chose on every validation row.
        held_out: per way, its mean task-metric score on the folds it did not choose on (empty when
            validation had too few rows to fold, and greedy log likelihood chose alone).
    """

    way: str
    selection: Selection
    held_out: dict[str, float]


def select_by(way: str, val_probas: Sequence[np.ndarray], val_labels: np.ndarray, *, metric: Score,
              n_rounds: int = DEFAULT_ROUNDS, seed: int = 0) -> Selection:
    """The bag one of :data:`WAYS` chooses (``metric`` scores the task metric)."""
    if way == "best_single":
        return best_single(val_probas, val_labels, score=metric)
    return select_ensemble(val_probas, val_labels, score=log_likelihood if way == "log_likelihood" else metric,
                           n_rounds=n_rounds, seed=seed)


def cross_checked_selection(val_probas: Sequence[np.ndarray], val_labels: np.ndarray, *, metric: Score,
                            n_rounds: int = DEFAULT_ROUNDS, seed: int = 0, n_folds: int = DEFAULT_FOLDS,
                            n_repeats: int = DEFAULT_REPEATS, ways: Sequence[str] = WAYS,
                            one_standard_error: bool = True) -> CrossChecked:
    """Choose how to choose on rows each way never saw: every way of ``ways`` selects on all folds but
    one of the validation rows (shuffled by ``seed``, ``n_repeats`` times) and is scored by ``metric``
    on that one. The first (simplest) way then selects on every row unless the way with the best mean
    beats it by more than one standard error of their per-fold differences (Breiman's
    one-standard-error rule; without the rule, the best way always wins).

    Why: which way generalises depends on the data. Replayed on recorded searches
    (``benchmarks/ensemble_selection.py``), greedy selection fell 0.1 to 2.1 points of accuracy below
    the best single candidate on PetFinder (one strong CatBoost, weak neural members) and rose 1.7 to
    2.8 points above it on av-digits-hard (complementary fusions). Held-out folds tell the two apart
    from validation alone; the rule keeps a gain of a few lucky rows from buying a bag of weak
    members. Fewer than ``2 * n_folds`` rows are too few to fold: the first way chooses alone.

    Raises:
        ConfigError: as :func:`select_ensemble`.
    """
    import numpy as np
    from sklearn.model_selection import RepeatedKFold

    labels = np.asarray(val_labels)
    probas = [np.asarray(p, dtype=np.float64) for p in val_probas]
    if len(labels) < 2 * n_folds or len(probas) < 2:
        return CrossChecked(ways[0], select_by(ways[0], probas, labels, metric=metric, n_rounds=n_rounds, seed=seed), {})
    scores: dict[str, list[float]] = {way: [] for way in ways}
    for fit, held in RepeatedKFold(n_splits=n_folds, n_repeats=n_repeats, random_state=seed).split(labels):
        for way in ways:
            chosen = select_by(way, [p[fit] for p in probas], labels[fit], metric=metric, n_rounds=n_rounds, seed=seed)
            scores[way].append(metric(labels[held], combine([p[held] for p in probas], chosen.weights)))
    held_out = {way: float(np.mean(values)) for way, values in scores.items()}
    best = max(ways, key=lambda name: (held_out[name], -list(ways).index(name)))
    gaps = np.subtract(scores[best], scores[ways[0]])
    way = ways[0] if one_standard_error and gaps.mean() <= gaps.std(ddof=1) / np.sqrt(len(gaps)) else best
    return CrossChecked(way, select_by(way, probas, labels, metric=metric, n_rounds=n_rounds, seed=seed), held_out)
