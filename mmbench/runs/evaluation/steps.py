"""Post-search steps: evaluations that run once a study has finished, as callbacks.

``mmbench search --robustness/--baselines/--seeds N`` turns its flags into a list of steps
(:func:`post_search_steps`) and runs them on each search's outcome (:func:`run_post_search`),
so a new evaluation is one more step, not one more branch in the CLI. Steps run after the
study so they never slow or influence the search itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from mmbench.registry import Registry
    from mmbench.search.settings import SearchSettings
    from mmbench.search.plan import SearchOutcome
    from mmbench.tracking.tracker import Tracker

Note = Callable[[str], None]


@dataclass(frozen=True)
class StepInputs:
    """What every step may use: the search's outcome and settings, the plugins and the store."""

    outcome: SearchOutcome
    settings: SearchSettings
    registry: Registry
    tracker: Tracker
    on_note: Note | None = None


class PostSearchStep(Protocol):
    """One evaluation after the search; ``name`` keys its result in :func:`run_post_search`'s dict."""

    name: str

    def __call__(self, inputs: StepInputs) -> Any: ...


@dataclass(frozen=True)
class Robustness:
    """Robustness and modality contributions of the best trial on the test split (logged on its run)."""

    name: str = "robustness"

    def __call__(self, inputs: StepInputs) -> str:
        from mmbench.runs.evaluation.scoring import evaluate_run

        run_id = inputs.outcome.best_run_id
        evaluate_run(inputs.tracker, run_id, inputs.registry, robustness=True, contributions=True,
                     data_root=inputs.settings.data_root, on_note=inputs.on_note)
        return run_id


@dataclass(frozen=True)
class Baselines:
    """The unimodal baselines of the best configuration (the leaderboard's fusion gain)."""

    name: str = "baselines"

    def __call__(self, inputs: StepInputs) -> list[Any]:
        from mmbench.runs.evaluation.baselines import run_baselines
        from mmbench.runs.reproduce import load_source

        source = load_source(inputs.tracker, inputs.outcome.best_run_id, inputs.registry, data_root=inputs.settings.data_root)
        return run_baselines(inputs.tracker, source, inputs.registry, device=inputs.settings.compute.device)


@dataclass(frozen=True)
class SeedReruns:
    """The study's top configurations rerun with ``n_seeds`` seeds in all (mean ± std on the leaderboard)."""

    n_seeds: int
    name: str = "seed_runs"

    def __call__(self, inputs: StepInputs) -> list[str]:
        from mmbench.runs.evaluation.seeds import rerun_seeds

        outcome, settings = inputs.outcome, inputs.settings
        return rerun_seeds(inputs.tracker, outcome.experiment_id, outcome.study, inputs.registry, n_seeds=self.n_seeds,
                           data_root=settings.data_root, device=settings.compute.device)


def post_search_steps(*, robustness: bool = False, baselines: bool = False, n_seeds: int = 1) -> list[PostSearchStep]:
    """The steps ``mmbench search``'s flags ask for, in the order they run.

    Example:
        >>> [step.name for step in post_search_steps(robustness=True, n_seeds=3)]
        ['robustness', 'seed_runs']
    """
    steps: list[PostSearchStep] = []
    if robustness:
        steps.append(Robustness())
    if baselines:
        steps.append(Baselines())
    if n_seeds > 1:
        steps.append(SeedReruns(n_seeds))
    return steps


def run_post_search(outcome: SearchOutcome, settings: SearchSettings, registry: Registry, steps: Sequence[PostSearchStep],
                    *, on_note: Note | None = None) -> dict[str, Any]:
    """Run ``steps`` on a finished search; nothing when it has no finished trial.

    Returns:
        Step name -> what the step returned (e.g. ``{"robustness": run_id, "seed_runs": [...]}``).
    """
    if outcome.best_run_id is None or not steps:
        return {}
    from mmbench.tracking.tracker import Tracker

    inputs = StepInputs(outcome, settings, registry, Tracker(settings.store.tracking_uri), on_note)
    return {step.name: step(inputs) for step in steps}


def post_search(outcome: SearchOutcome, settings: SearchSettings, registry: Registry, *, robustness: bool = False,
                baselines: bool = False, n_seeds: int = 1, on_note: Note | None = None) -> dict[str, Any]:
    """The steps of ``mmbench search``'s flags run on ``outcome`` (:func:`post_search_steps` + :func:`run_post_search`)."""
    steps = post_search_steps(robustness=robustness, baselines=baselines, n_seeds=n_seeds)
    return run_post_search(outcome, settings, registry, steps, on_note=on_note)
