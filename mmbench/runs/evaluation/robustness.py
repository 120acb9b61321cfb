"""Robustness of a trained model: each modality removed, and each modality increasingly noisy.

Researchers choose a fusion for how it behaves when a modality is missing or corrupted, not
only for its clean accuracy (MultiBench, Liang et al., 2021, evaluates the same two axes).
Everything here is a pure function of a trained model and a split's tensors, so ``mmbench
evaluate``, ``mmbench search --robustness`` and tests share it.

* **Missing**: a modality's inputs are replaced by what its encoder says "absent" looks like
  (:meth:`mmbench.components.Encoder.missing`: zeros, empty masks, padding ids by default).
* **Noise** at a *severity* ``s`` in ``[0, 1]``: float inputs get Gaussian noise of standard
  deviation ``2 s`` times the tensor's own standard deviation; integer ids (tokens, categories)
  are corrupted with probability ``s`` at each real (non-zero) position, half dropped (id and
  mask set to 0) and half swapped for another id seen in the split.
* **Summary** per modality (and for noise on all modalities at once, ``all``):
  ``relative`` = mean over the noisy levels of ``score(s) / clean``, the MultiBench relative
  robustness; ``effective`` = mean of ``(score(s) - floor) / (clean - floor)`` where ``floor``
  is the score with every modality removed: the share of the model's above-chance skill that
  survives the noise, comparable across tasks whose chance levels differ.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mmbench.data.prepared import SplitTensors

if TYPE_CHECKING:
    from mmbench.train.model import MultimodalModel

#: noise severities of the curves (0 = clean)
DEFAULT_LEVELS: tuple[float, ...] = (0.0, 0.1, 0.25, 0.5, 0.75, 1.0)
#: a float input's noise standard deviation at severity 1, in units of the input's own std
FLOAT_NOISE_SCALE = 2.0
#: integer inputs that are not token/category ids (left alone by the noise)
_NOT_IDS = ("mask", "type", "position")


def score(model: MultimodalModel, split: SplitTensors, *, metric: str, n_classes: int) -> float:
    """The task metric of ``model`` on ``split``."""
    from mmbench.train.loop import evaluate

    return float(evaluate(model, split, n_classes=n_classes)[metric])


def without(model: MultimodalModel, split: SplitTensors, modalities: Iterable[str]) -> SplitTensors:
    """``split`` with the given modalities replaced by their encoder's "missing" inputs."""
    removed = set(modalities)
    inputs = {
        name: (dict(model.encoders[name].missing(tensors)) if name in removed else tensors)
        for name, tensors in split.inputs.items()
    }
    return SplitTensors(inputs, split.labels)


def perturb(batch: Mapping[str, torch.Tensor], severity: float, generator: torch.Generator) -> dict[str, torch.Tensor]:
    """One modality's tensors corrupted at ``severity`` (see the module docstring).

    Args:
        batch: the modality's tensors (first dimension = rows).
        severity: 0 (unchanged) to 1.
        generator: a CPU generator, so the same seed gives the same corruption.
    """
    if severity <= 0:
        return dict(batch)
    out = dict(batch)
    for key, value in batch.items():
        if value.is_floating_point():
            noise = torch.randn(value.shape, generator=generator).to(value.device, value.dtype)
            spread = value.float().std().item() if value.numel() > 1 else 1.0
            out[key] = value + noise * (FLOAT_NOISE_SCALE * severity * (spread if spread > 0 else 1.0))
        elif value.dtype != torch.bool and not any(part in key for part in _NOT_IDS):
            out[key], dropped = _corrupt_ids(value, severity, generator)
            for mask_key, mask in batch.items():
                if "mask" in mask_key and mask.shape == value.shape:
                    out[mask_key] = mask.masked_fill(dropped, 0)
    return out


def _corrupt_ids(ids: torch.Tensor, severity: float, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Token dropout (id -> 0) and swaps (id -> another real id) at real positions."""
    real = (ids != 0).cpu()
    draw = torch.rand(ids.shape, generator=generator)
    dropped = real & (draw < severity / 2)
    swapped = real & (draw >= severity / 2) & (draw < severity)
    vocabulary = torch.unique(ids.cpu()[real])
    corrupted = ids.cpu().clone()
    if len(vocabulary):
        picks = vocabulary[torch.randint(len(vocabulary), ids.shape, generator=generator)]
        corrupted = torch.where(swapped, picks, corrupted)
    corrupted = corrupted.masked_fill(dropped, 0)
    return corrupted.to(ids.device), dropped.to(ids.device)


def noisy(split: SplitTensors, modalities: Iterable[str], severity: float, *, seed: int = 0) -> SplitTensors:
    """``split`` with noise of ``severity`` on the given modalities."""
    generator = torch.Generator().manual_seed(seed)
    chosen = set(modalities)
    inputs = {
        name: (perturb(tensors, severity, generator) if name in chosen else tensors)
        for name, tensors in split.inputs.items()
    }
    return SplitTensors(inputs, split.labels)


@dataclass
class RobustnessReport:
    """Scores of one model under missing and noisy modalities.

    Attributes:
        metric: the task metric.
        split: the split it was measured on.
        clean: the score with every modality intact.
        floor: the score with every modality removed (the "no information" baseline).
        missing: modality -> score with that modality removed.
        levels: the noise severities.
        curves: modality (or ``all``) -> score at each level.
    """

    metric: str
    split: str
    clean: float
    floor: float
    missing: dict[str, float]
    levels: list[float]
    curves: dict[str, list[float]]
    relative: dict[str, float] = field(default_factory=dict)
    effective: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, curve in self.curves.items():
            noisy_scores = [s for level, s in zip(self.levels, curve) if level > 0]
            self.relative[name] = relative_robustness(self.clean, noisy_scores)
            self.effective[name] = effective_robustness(self.clean, self.floor, noisy_scores)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly content (the ``evaluation/robustness.json`` artifact)."""
        return asdict(self)

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``robust_missing.<m>``, ``robust_relative[.<m>]``, ``robust_effective[.<m>]``."""
        flat = {"robust_clean": self.clean, "robust_floor": self.floor}
        flat.update({f"robust_missing.{m}": v for m, v in self.missing.items()})
        flat.update({f"robust_relative.{m}": v for m, v in self.relative.items()})
        flat.update({f"robust_effective.{m}": v for m, v in self.effective.items()})
        if "all" in self.relative:
            flat["robust_relative"] = self.relative["all"]
            flat["robust_effective"] = self.effective["all"]
        return {k: v for k, v in flat.items() if math.isfinite(v)}


def relative_robustness(clean: float, noisy_scores: Sequence[float]) -> float:
    """Mean of ``score / clean`` over the noisy levels (1 = unaffected)."""
    if not noisy_scores or clean <= 0:
        return math.nan
    return statistics.fmean(s / clean for s in noisy_scores)


def effective_robustness(clean: float, floor: float, noisy_scores: Sequence[float]) -> float:
    """Mean of ``(score - floor) / (clean - floor)``: the share of above-floor skill kept."""
    if not noisy_scores or clean - floor <= 1e-9:
        return math.nan
    return statistics.fmean((s - floor) / (clean - floor) for s in noisy_scores)


def robustness(model: MultimodalModel, split: SplitTensors, *, metric: str, n_classes: int,
               levels: Sequence[float] = DEFAULT_LEVELS, seed: int = 0, split_name: str = "test") -> RobustnessReport:
    """Evaluate ``model`` with each modality removed and under increasing noise per modality.

    Args:
        model: a trained model (its device is used).
        split: the tensors to score (usually the test split).
        metric: the task metric (``accuracy``, ``macro_f1``, ``auroc``).
        n_classes: number of classes.
        levels: noise severities in ``[0, 1]``; 0 is added when absent.
        seed: seed of the noise.
        split_name: recorded in the report.
    """
    levels = sorted({0.0, *(float(level) for level in levels)})
    names = list(split.inputs)
    clean = score(model, split, metric=metric, n_classes=n_classes)
    floor = score(model, without(model, split, names), metric=metric, n_classes=n_classes)
    missing = {m: score(model, without(model, split, [m]), metric=metric, n_classes=n_classes) for m in names}
    curves: dict[str, list[float]] = {}
    for target in [*([[m] for m in names]), names]:
        key = target[0] if len(target) == 1 and len(names) > 1 else "all"
        if key == "all" and "all" in curves:
            continue
        curves[key] = [
            clean if level == 0 else score(model, noisy(split, target, level, seed=seed), metric=metric, n_classes=n_classes)
            for level in levels
        ]
    return RobustnessReport(metric, split_name, clean, floor, missing, list(levels), curves)


def robustness_figure(report: RobustnessReport, *, title: str = ""):
    """Noise curves per modality (dashed line: score with every modality removed)."""
    from mmbench.tracking.artifacts import _pyplot

    plt = _pyplot()
    figure, axis = plt.subplots(figsize=(6, 3.6))
    for index, (name, curve) in enumerate(report.curves.items()):  # markers and dashes tell overlapping curves apart
        axis.plot(report.levels, curve, marker="os^Dvx"[index % 6], linestyle=("-", "--", ":", "-.")[index % 4],
                  label=f"noise on {name}")
    axis.axhline(report.floor, color="grey", linestyle="--", linewidth=1, label="all modalities removed")
    axis.set_xlabel("noise severity")
    axis.set_ylabel(f"{report.split} {report.metric}")
    axis.set_title(title or "robustness to noise", fontsize=9)
    axis.legend(fontsize=7)
    figure.tight_layout()
    return figure
