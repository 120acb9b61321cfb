"""Auxiliary objectives: align the modalities' embeddings in a joint space during training.

Each modality's pooled encoding is projected (one linear map per modality) into a joint space
of ``aux_dim`` dimensions, and paired rows (the same example seen by two modalities) are pulled
together by one of:

* ``vsepp``: VSE++ hinge loss on cosine similarity with the hardest in-batch negative
  (Faghri et al., 2018, VSE++: Improving Visual-Semantic Embeddings with Hard Negatives).
* ``infonce``: symmetric InfoNCE / CLIP loss, cross-entropy over in-batch similarities
  (van den Oord et al., 2018, Representation Learning with Contrastive Predictive Coding;
  Radford et al., 2021, CLIP).
* ``dcca``: a deep-CCA-style correlation objective in its "soft CCA" form: per-dimension
  correlation between batch-standardised views plus a decorrelation penalty, which avoids the
  unstable matrix square roots of exact deep CCA on small batches (Andrew et al., 2013, Deep
  Canonical Correlation Analysis; Chang et al., 2018, Scalable and Effective Deep CCA via
  Soft Decorrelation).

With more than two modalities the loss is the mean over all pairs. The training loop adds
``aux_weight * loss`` to the classification loss (the model carries the objective as
``MultimodalModel.auxiliary``, so the projections are trained with it and saved with it).
The trial configuration chooses it under ``train.aux`` / ``train.aux_weight``; see
:data:`AUX_CHOICES`.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mmbench.components import Encoded
from mmbench.errors import ConfigError, unknown_name_message

#: Auxiliary alignment objectives (``train.aux``), as the search space offers them.
AUX_CHOICES: tuple[str, ...] = ("none", "vsepp", "infonce", "dcca")
#: Values used when the trial configuration does not set them.
AUX_DEFAULTS: dict[str, Any] = {"aux_weight": 0.1, "aux_dim": 64, "aux_margin": 0.2, "aux_temperature": 0.1}


def vsepp_loss(a: torch.Tensor, b: torch.Tensor, margin: float = 0.2) -> torch.Tensor:
    """VSE++ (max of hinges): for each anchor, only the hardest negative in the batch counts.

    Args:
        a: ``(B, D)`` embeddings of one modality, L2-normalised.
        b: ``(B, D)`` embeddings of the other; row ``i`` is ``a[i]``'s pair.
        margin: how much closer the pair must be than the hardest negative.

    Returns:
        The mean over anchors of both directions (``a -> b`` and ``b -> a``); zero for a batch
        of one, which has no negative.
    """
    if a.shape[0] < 2:
        return (a * b).sum() * 0.0
    scores = a @ b.T
    positive = scores.diagonal()
    eye = torch.eye(scores.shape[0], dtype=torch.bool, device=scores.device)
    cost_b = (margin + scores - positive[:, None]).clamp(min=0).masked_fill(eye, 0)  # a_i against wrong b_j
    cost_a = (margin + scores - positive[None, :]).clamp(min=0).masked_fill(eye, 0)  # b_j against wrong a_i
    return cost_b.max(dim=1).values.mean() + cost_a.max(dim=0).values.mean()


def infonce_loss(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE: each row must pick its pair among the batch, in both directions.

    Args:
        a: ``(B, D)`` L2-normalised embeddings.
        b: ``(B, D)`` L2-normalised embeddings, paired by row.
        temperature: softmax temperature on cosine similarities (lower = sharper).
    """
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target)) / 2


def correlation_loss(a: torch.Tensor, b: torch.Tensor, decorrelation: float = 1.0, eps: float = 1e-5) -> torch.Tensor:
    """Soft CCA: maximise per-dimension correlation of the views, keep each view's dimensions apart.

    Both views are standardised over the batch; ``mean((za - zb)^2) = 2 (1 - mean correlation)``.
    Without the decorrelation penalty every dimension would collapse onto the single most
    correlated direction.

    Args:
        a: ``(B, D)`` projections of one modality (not normalised).
        b: ``(B, D)`` projections of the other, paired by row.
        decorrelation: weight of the mean squared off-diagonal correlation within each view.
        eps: keeps a constant dimension from dividing by zero.
    """
    if a.shape[0] < 2:
        return (a * b).sum() * 0.0
    za = (a - a.mean(dim=0)) / (a.std(dim=0, unbiased=False) + eps)
    zb = (b - b.mean(dim=0)) / (b.std(dim=0, unbiased=False) + eps)
    mismatch = (za - zb).pow(2).mean()
    off_diagonal = ~torch.eye(a.shape[1], dtype=torch.bool, device=a.device)
    penalty = sum((z.T @ z / z.shape[0])[off_diagonal].pow(2).mean() for z in (za, zb))
    return mismatch + decorrelation * penalty


def recall_at_1(a: torch.Tensor, b: torch.Tensor) -> float:
    """Fraction of rows of ``a`` whose most cosine-similar row of ``b`` is their own pair.

    Chance level is ``1 / B``. Used to check that an alignment objective works.
    """
    scores = F.normalize(a.float(), dim=-1) @ F.normalize(b.float(), dim=-1).T
    target = torch.arange(a.shape[0], device=a.device)
    return (scores.argmax(dim=1) == target).float().mean().item()


class AlignmentObjective(nn.Module):
    """Per-modality projections into a joint space and the alignment loss between them.

    Calling it on the encoders' outputs returns ``weight * loss`` (a scalar), the signature
    :func:`mmbench.train.loop.fit` expects of an extra loss.

    Args:
        dims: modality -> pooled width ``D``.
        objective: ``vsepp``, ``infonce`` or ``dcca``.
        weight: factor of the loss against the classification loss.
        dim: width of the joint space.
        margin: VSE++ margin.
        temperature: InfoNCE temperature.

    Raises:
        ConfigError: an unknown objective, fewer than two modalities, or a bad setting.
    """

    def __init__(
        self,
        dims: Mapping[str, int],
        objective: str,
        *,
        weight: float = AUX_DEFAULTS["aux_weight"],
        dim: int = AUX_DEFAULTS["aux_dim"],
        margin: float = AUX_DEFAULTS["aux_margin"],
        temperature: float = AUX_DEFAULTS["aux_temperature"],
    ) -> None:
        super().__init__()
        choices = [c for c in AUX_CHOICES if c != "none"]
        if objective not in choices:
            raise ConfigError(f"train.aux: {unknown_name_message('auxiliary objective', objective, list(AUX_CHOICES))}")
        if len(dims) < 2:
            raise ConfigError(f"train.aux={objective} aligns modalities and needs at least 2; this task has {len(dims)}")
        for key, value, ok in (("aux_weight", weight, weight >= 0), ("aux_dim", dim, isinstance(dim, int) and dim >= 1),
                               ("aux_margin", margin, margin >= 0), ("aux_temperature", temperature, temperature > 0)):
            if not ok:
                raise ConfigError(f"train.{key}={value!r} is out of range")
        self.objective = objective
        self.weight = float(weight)
        self.margin = float(margin)
        self.temperature = float(temperature)
        self.order = sorted(dims)
        self.projections = nn.ModuleDict({m: nn.Linear(d, dim) for m, d in dims.items()})

    def embed(self, encoded: Mapping[str, Encoded]) -> dict[str, torch.Tensor]:
        """Joint-space embeddings per modality (L2-normalised for the contrastive objectives)."""
        out = {m: self.projections[m](encoded[m].pooled.float()) for m in self.order}
        if self.objective == "dcca":
            return out
        return {m: F.normalize(z, dim=-1) for m, z in out.items()}

    def loss(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        """The unweighted alignment loss, averaged over modality pairs."""
        with torch.autocast(device_type=encoded[self.order[0]].pooled.device.type, enabled=False):
            joint = self.embed(encoded)
            losses = [self._pair(joint[x], joint[y]) for x, y in itertools.combinations(self.order, 2)]
            return torch.stack(losses).mean()

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:
        return self.weight * self.loss(encoded)

    def _pair(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        if self.objective == "vsepp":
            return vsepp_loss(a, b, self.margin)
        if self.objective == "infonce":
            return infonce_loss(a, b, self.temperature)
        return correlation_loss(a, b)


def build_auxiliary(train: Mapping[str, Any], dims: Mapping[str, int]) -> AlignmentObjective | None:
    """The objective a trial configuration's ``train`` block asks for, or ``None`` (``aux: none``).

    Args:
        train: ``TrialConfig.train``; reads ``aux``, ``aux_weight``, ``aux_dim``, ``aux_margin``,
            ``aux_temperature`` (defaults: :data:`AUX_DEFAULTS`).
        dims: modality -> pooled width.
    """
    objective = train.get("aux", "none")
    if objective in (None, "none"):
        return None
    settings = {**AUX_DEFAULTS, **{k: v for k, v in train.items() if k in AUX_DEFAULTS}}
    return AlignmentObjective(
        dims, objective, weight=settings["aux_weight"], dim=settings["aux_dim"],
        margin=settings["aux_margin"], temperature=settings["aux_temperature"],
    )
