"""Unimodal baselines and the fusion gain: is fusing modalities worth it on this task?

For each modality, the best configuration's encoder for that modality alone, under ``early``
fusion (a head on one pooled vector; the best config's ``early`` head settings when it used
``early``, else the defaults), trained with the best configuration's training parameters and
seed. Each baseline is a child run of the study with ``mmbench.role=baseline`` (so it never
takes a leaderboard rank); the leaderboard's ``gain`` column is each row's validation score
minus the best baseline's, found by :func:`best_unimodal`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from mmbench.tracking.layout import ROLE_BASELINE
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    from mmbench.search.trials import TrialConfig
    from mmbench.registry import Registry
    from mmbench.runs.reproduce import RunSource

UNIMODAL_FUSION = "early"


def unimodal_config(best: TrialConfig, modality: str) -> TrialConfig:
    """The best configuration reduced to one modality under ``early`` fusion."""
    from mmbench.search.trials import TrialConfig

    return TrialConfig(
        fusion=UNIMODAL_FUSION,
        fusion_params=dict(best.fusion_params) if best.fusion == UNIMODAL_FUSION else {},
        encoders={modality: best.encoders[modality]},
        encoder_params={modality: dict(best.encoder_params[modality])},
        # alignment objectives (train.aux*) need two modalities: a unimodal model trains without them
        train={k: v for k, v in best.train.items() if not k.startswith("aux")},
        seed=best.seed,
    )


@dataclass
class Baseline:
    """One unimodal baseline's outcome."""

    modality: str
    run_id: str
    val_score: float
    test_score: float


def run_baselines(tracker: Tracker, source: RunSource, registry: Registry, *, device: str = "cpu") -> list[Baseline]:
    """Train and record the unimodal baseline of every modality of the best run.

    Also records on the best run ``fusion_gain`` (its validation score minus the best
    baseline's) and on the study run ``best_unimodal_val_score`` with tag ``mmbench.best_unimodal``.
    """
    from mmbench.train.efficiency import efficiency_metrics
    from mmbench.runs.evaluation.recording import record_trained_run
    from mmbench.runs.reproduce import config_tensors, final_metrics, train_config

    found: list[Baseline] = []
    for modality in source.config.encoders:
        config = unimodal_config(source.config, modality)
        infos, tensors = config_tensors(config, source.data, registry)
        model, result = train_config(config, source.task, source.data, infos, tensors, registry, device=device)
        metrics = {**final_metrics(result, source.task.metric), "n_parameters": result.n_parameters, "duration_s": result.seconds}
        metrics.update(efficiency_metrics(model, result, tensors["validation"]))
        run_id = record_trained_run(
            tracker, source.run, config, metrics, role=ROLE_BASELINE, kind="baseline",
            run_name=f"baseline {modality}: {config.combination}", extra_tags={f"{TAG}baseline_modality": modality},
        )
        found.append(Baseline(modality, run_id, metrics["val_score"], metrics["test_score"]))
    if found:
        top = max(found, key=lambda b: b.val_score)
        best_val = source.run.data.metrics.get("val_score")
        if best_val is not None:
            tracker.log_metrics(source.run_id, {"fusion_gain": best_val - top.val_score})
        parent = source.run.data.tags.get("mlflow.parentRunId")
        if parent:
            tracker.log_metrics(parent, {"best_unimodal_val_score": top.val_score, "best_unimodal_test_score": top.test_score})
            tracker.set_tags(parent, {f"{TAG}best_unimodal": top.modality})
    return found
