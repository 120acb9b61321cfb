"""What a search resolves before it starts (:class:`SearchPlan`) and leaves behind (:class:`SearchOutcome`).

Kept apart from :mod:`mmbench.search.study` so the stages around the study (classical
baselines, ensembles) and the post-search steps read them without importing the study.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmbench.data.prepared import PreparedData
    from mmbench.search.budget import Budget
    from mmbench.search.presets import Preset
    from mmbench.search.trials import SearchSpace
    from mmbench.tasks.files import Task


@dataclass
class SearchPlan:
    """The resolved inputs of one search: task, data, space and budget.

    ``n_trials`` is ``None`` under a ``--time-limit`` without ``--n-trials``: the budget decides.
    Later stages (fine-tuning, the ensemble) ask ``budget`` how long they may run (``None``: no limit).
    """

    task: Task
    data: PreparedData
    space: SearchSpace
    study_name: str
    n_trials: int | None
    timeout: float | None
    objectives: tuple[str, ...]
    budget: Budget | None = None
    preset: Preset | None = None


@dataclass
class SearchOutcome:
    """What a search left behind."""

    task: str
    study: str
    n_trials: int
    n_complete: int
    best_value: float | None
    best_config: dict[str, Any] | None
    parent_run_id: str
    experiment_id: str
    best_run_id: str | None = None
    pareto_trials: list[int] = field(default_factory=list)
    failure_summary: str | None = None  # set when trials failed and none completed (mmbench.search.failures)
