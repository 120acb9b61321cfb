"""Holistic evaluation beyond accuracy: robustness, modality contributions, efficiency,
unimodal baselines, seed reruns and the HTML report.

Submodules (each one job, heavy imports inside): :mod:`~mmbench.runs.evaluation.robustness`,
:mod:`~mmbench.runs.evaluation.contributions`, :mod:`~mmbench.train.efficiency`,
:mod:`~mmbench.runs.evaluation.baselines`, :mod:`~mmbench.runs.evaluation.seeds`,
:mod:`~mmbench.runs.evaluation.report`. This module holds the two entry points the CLI calls:
:func:`evaluate_run` (``mmbench evaluate``) and :func:`post_search` (``mmbench search
--robustness/--baselines/--seeds``, run after the study finishes so evaluation never slows or
influences the search itself).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmbench.runs.evaluation.contributions import ContributionReport
    from mmbench.runs.evaluation.robustness import RobustnessReport
    from mmbench.registry import Registry
    from mmbench.search.settings import SearchSettings
    from mmbench.search.study import SearchOutcome
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
    metric, n_classes = source.task.metric, source.data.schema.n_classes
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


def post_search(outcome: SearchOutcome, settings: SearchSettings, registry: Registry, *, robustness: bool = False,
                baselines: bool = False, n_seeds: int = 1, on_note: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Evaluations requested on ``mmbench search``, run once the study has finished.

    ``robustness`` measures robustness and modality contributions of the best trial (test split);
    ``baselines`` trains the unimodal baselines of the best configuration; ``n_seeds > 1`` reruns
    the study's top configurations with more seeds.

    Returns:
        What was done: ``{"robustness": run_id, "baselines": [...], "seed_runs": [...]}``.
    """
    from mmbench.tracking.tracker import Tracker

    done: dict[str, Any] = {}
    if outcome.best_run_id is None or not (robustness or baselines or n_seeds > 1):
        return done
    tracker = Tracker(settings.store.tracking_uri)
    device = settings.compute.device
    if robustness:
        evaluate_run(tracker, outcome.best_run_id, registry, robustness=True, contributions=True,
                     data_root=settings.data_root, on_note=on_note)
        done["robustness"] = outcome.best_run_id
    if baselines:
        from mmbench.runs.evaluation.baselines import run_baselines
        from mmbench.runs.reproduce import load_source

        source = load_source(tracker, outcome.best_run_id, registry, data_root=settings.data_root)
        done["baselines"] = run_baselines(tracker, source, registry, device=device)
    if n_seeds > 1:
        from mmbench.runs.evaluation.seeds import rerun_seeds

        done["seed_runs"] = rerun_seeds(tracker, outcome.experiment_id, outcome.study, registry, n_seeds=n_seeds,
                                        data_root=settings.data_root, device=device)
    return done


__all__ = ["Evaluation", "evaluate_run", "post_search"]
