"""What each modality contributes to a trained model: ablation and exact Shapley values.

The value of a set ``S`` of modalities is the model's score when every modality outside ``S``
is removed (:meth:`mmbench.components.Encoder.missing`); ``v(empty)`` is the no-information
floor. Two attributions follow:

* **ablation**: ``v(all) - v(all without m)``, what is lost when ``m`` alone goes missing.
  Redundant modalities each look useless under ablation, which is why Shapley is reported too;
* **Shapley** (Shapley, 1953): ``phi_m`` = the average, over every order of adding modalities,
  of the score gained when ``m`` joins. Exact over all ``2^n`` subsets, which is cheap for the
  ``n <= 5`` modalities of real tasks (32 evaluations); the values sum to ``v(all) - v(empty)``.
  ``share`` is ``phi_m`` as a percentage of the sum of ``|phi|``.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from mmbench.runs.evaluation.robustness import score, without

if TYPE_CHECKING:
    from mmbench.data.prepared import SplitTensors
    from mmbench.train.model import MultimodalModel

#: above this many modalities only the ablation is computed (2^n evaluations otherwise)
MAX_SHAPLEY_MODALITIES = 5


def shapley_values(players: Sequence[str], value: Mapping[frozenset[str], float]) -> dict[str, float]:
    """Exact Shapley values from the value of every subset of ``players``.

    Example:
        >>> v = {frozenset(): 0.5, frozenset("a"): 0.9, frozenset("b"): 0.5, frozenset("ab"): 0.9}
        >>> {k: round(x, 3) for k, x in shapley_values(["a", "b"], v).items()}
        {'a': 0.4, 'b': 0.0}
    """
    n = len(players)
    phi: dict[str, float] = {}
    for player in players:
        others = [p for p in players if p != player]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                base = frozenset(subset)
                total += weight * (value[base | {player}] - value[base])
        phi[player] = total
    return phi


def shares(phi: Mapping[str, float]) -> dict[str, float]:
    """Each value as a percentage of the sum of absolute values (0 for all when they are all 0)."""
    scale = sum(abs(v) for v in phi.values())
    return {k: (100.0 * v / scale if scale > 0 else 0.0) for k, v in phi.items()}


@dataclass
class ContributionReport:
    """Per-modality contributions of one model on one split.

    Attributes:
        metric: the task metric.
        split: the split scored.
        full: score with every modality.
        empty: score with none.
        ablation: modality -> ``full - score without it``.
        shapley: modality -> Shapley value (``None`` above :data:`MAX_SHAPLEY_MODALITIES`).
        share: modality -> Shapley value in percent of the total (or ablation share).
        subsets: ``"a+b"`` -> score of that subset (``""`` for the empty one).
    """

    metric: str
    split: str
    full: float
    empty: float
    ablation: dict[str, float]
    shapley: dict[str, float] | None
    share: dict[str, float]
    subsets: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly content (the ``evaluation/contributions.json`` artifact)."""
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics ``ablation.<m>``, ``shapley.<m>``, ``shapley_share.<m>``."""
        flat = {f"ablation.{m}": v for m, v in self.ablation.items()}
        if self.shapley is not None:
            flat.update({f"shapley.{m}": v for m, v in self.shapley.items()})
        flat.update({f"shapley_share.{m}": v for m, v in self.share.items()})
        return flat


def contributions(model: MultimodalModel, split: SplitTensors, *, metric: str, n_classes: int,
                  split_name: str = "test") -> ContributionReport:
    """Ablation and (up to :data:`MAX_SHAPLEY_MODALITIES` modalities) exact Shapley values."""
    names = list(split.inputs)

    def value(kept: frozenset[str]) -> float:
        return score(model, without(model, split, [m for m in names if m not in kept]), metric=metric, n_classes=n_classes)

    if len(names) <= MAX_SHAPLEY_MODALITIES:
        subsets = [frozenset(c) for size in range(len(names) + 1) for c in itertools.combinations(names, size)]
    else:
        subsets = [frozenset(), frozenset(names), *(frozenset(names) - {m} for m in names)]
    values = {subset: value(subset) for subset in subsets}
    full, empty = values[frozenset(names)], values[frozenset()]
    ablation = {m: full - values[frozenset(names) - {m}] for m in names}
    phi = shapley_values(names, values) if len(names) <= MAX_SHAPLEY_MODALITIES else None
    return ContributionReport(
        metric=metric,
        split=split_name,
        full=full,
        empty=empty,
        ablation=ablation,
        shapley=phi,
        share=shares(phi if phi is not None else ablation),
        subsets={"+".join(m for m in names if m in s): v for s, v in values.items()},
    )


def contributions_figure(report: ContributionReport, *, title: str = ""):
    """Side-by-side bars: Shapley value and ablation drop per modality."""
    from mmbench.tracking.artifacts import _pyplot

    plt = _pyplot()
    names = list(report.ablation)
    figure, axis = plt.subplots(figsize=(max(5.0, 1.8 + 1.2 * len(names)), 3.4))
    positions = range(len(names))
    width = 0.38
    if report.shapley is not None:
        axis.bar([p - width / 2 for p in positions], [report.shapley[m] for m in names], width, label="Shapley")
    axis.bar([p + width / 2 for p in positions], [report.ablation[m] for m in names], width, label="ablation drop")
    axis.set_xticks(list(positions), names)
    axis.axhline(0, color="black", linewidth=0.8)
    axis.set_ylabel(f"{report.split} {report.metric} contributed")
    axis.set_title(title or "modality contributions", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
