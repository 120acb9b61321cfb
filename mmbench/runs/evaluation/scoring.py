"""Scoring a recorded run: ``mmbench evaluate`` (metrics, optionally robustness and contributions).

Measured on one of the run's splits, robustness and contributions are logged on the run.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mmbench.runs.evaluation.contributions import ContributionReport
    from mmbench.runs.evaluation.robustness import RobustnessReport
    from mmbench.registry import Registry
    from mmbench.tracking.tracker import Tracker

SPLITS = ("train", "validation", "test")


@dataclass
class Evaluation:
    """What :func:`evaluate_run` measured."""

    run_id: str
    split: str
    n_rows: int
    metrics: dict[str, float]
    robustness: RobustnessReport | None = None
    contributions: ContributionReport | None = None
    notes: list[str] = field(default_factory=list)


def evaluate_run(tracker: Tracker, run_id: str, registry: Registry, *, split: str = "test", robustness: bool = False,
                 contributions: bool = False, data_root: Path | None = None, retrain: bool = True,
                 on_note: Callable[[str], None] | None = None) -> Evaluation:
    """Score a recorded run's model on a split (or a labelled csv/jsonl file); optionally robustness
    and contributions, which are logged on the run when measured on one of its splits.

    Args:
        tracker: the tracking store.
        run_id: the trial run.
        registry: the loaded plugins.
        split: ``train``, ``validation``, ``test`` or a path to a labelled ``.csv`` / ``.jsonl`` file.
        robustness: also measure missing-modality and noise robustness.
        contributions: also measure per-modality contributions.
        data_root: the task's data folder.
        retrain: retrain the run from its config when it has no logged weights.
        on_note: receives one-line notes (retraining, changed data).

    Raises:
        MmbenchError: unknown run, unusable file, or a file without labels.
    """
    from mmbench.errors import DataError
    from mmbench.runs.evaluation.recording import log_evaluation
    from mmbench.runs.predict import labelled_split, load_model
    from mmbench.runs.reproduce import load_source
    from mmbench.train.loop import evaluate

    source = load_source(tracker, run_id, registry, data_root=data_root)
    notes: list[str] = []

    def note(text: str) -> None:
        notes.append(text)
        if on_note is not None:
            on_note(text)

    if not source.fingerprint_matches:
        note(f"the data of task '{source.task.name}' changed since run {run_id} was trained (fingerprint differs)")
    model = load_model(tracker, source, registry, retrain=retrain, on_retrain=note)
    if split in SPLITS:
        tensors, on_run = source.tensors[split], True
    else:
        tensors, labelled = labelled_split(source, split, registry)
        if not labelled:
            raise DataError(f"{split}: column '{source.data.schema.label}' (the label) is needed to evaluate; use `mmbench predict` for unlabelled rows")
        on_run = False
    metric, n_classes = source.task.metric, source.data.schema.n_outputs
    result = Evaluation(run_id, split if on_run else str(split), len(tensors), evaluate(model, tensors, n_classes=n_classes), notes=notes)
    title = f"{source.config.combination} ({source.task.name})"
    if robustness:
        from mmbench.runs.evaluation.robustness import robustness as measure
        from mmbench.runs.evaluation.robustness import robustness_figure

        result.robustness = measure(model, tensors, metric=metric, n_classes=n_classes, split_name=Path(split).name, seed=source.config.seed)
        if on_run:
            log_evaluation(tracker, run_id, "robustness", result.robustness.to_dict(), result.robustness.metrics(),
                           robustness_figure(result.robustness, title=title))
    if contributions:
        from mmbench.runs.evaluation.contributions import contributions as attribute
        from mmbench.runs.evaluation.contributions import contributions_figure

        result.contributions = attribute(model, tensors, metric=metric, n_classes=n_classes, split_name=Path(split).name)
        if on_run:
            log_evaluation(tracker, run_id, "contributions", result.contributions.to_dict(), result.contributions.metrics(),
                           contributions_figure(result.contributions, title=title))
    return result
