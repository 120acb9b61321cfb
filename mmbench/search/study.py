"""The Optuna study behind ``mmbench search``: plan, open or resume, optimise, finalise.

One study per (task, study name). :func:`run_search` is a sequence of small steps, each its own
function so that reliability layers (heartbeats, signal handling, other storages) can wrap
one step without touching the rest:

1. :func:`plan_search` - task, data, search space and budget from task file + CLI;
2. :func:`open_study` - create or load the study; refuse one of another task, space or objectives;
3. :func:`start_tracking` - the task's MLflow experiment and the study's parent run;
4. :func:`~mmbench.search.resume.recover_interrupted` - close trials left RUNNING by dead workers;
5. :func:`optimize` - run trials (:class:`~mmbench.search.objective.Objective`) until the budget is spent;
6. :func:`finalize` - best trial, best model, plots, parent run closed.
"""

from __future__ import annotations

import functools
import logging
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.train.features.cache import FeatureCache
from mmbench.search.trials import SearchSpace, build_search_space
from mmbench.infra.devices import DevicePool
from mmbench.errors import ConfigError, MmbenchError
from mmbench.search.attrs import CONFIG, RUN_ID, STUDY_OBJECTIVES, STUDY_SPACE, STUDY_TASK, directions
from mmbench.search.objective import Objective
from mmbench.search.settings import DEFAULT_MAX_EPOCHS, DEFAULT_N_TRIALS, DEFAULT_PATIENCE, SearchSettings
from mmbench.search.progress import QuietReporter, Reporter
from mmbench.search.resume import StopAtBudget, finished_count, recover_interrupted
from mmbench.search.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from mmbench.infra.signals import graceful_stop, stop_callback
from mmbench.search.storage import DEFAULT_HEARTBEAT, bind_stale_handler, create_or_load_study, shared_parent_run
from mmbench.infra.secrets import redact_url
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    import optuna

    from mmbench.data.prepared import PreparedData
    from mmbench.registry import Registry
    from mmbench.tasks.files import Task

__all__ = ["PRUNERS", "SAMPLERS", "SearchOutcome", "SearchPlan", "SearchSettings", "run_search", "run_suite"]

@dataclass
class SearchPlan:
    """The resolved inputs of one search: task, data, space and budget."""

    task: Task
    data: PreparedData
    space: SearchSpace
    study_name: str
    n_trials: int
    timeout: float | None
    objectives: tuple[str, ...]


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


def run_search(settings: SearchSettings, *, registry: Registry | None = None, reporter: Reporter | None = None) -> SearchOutcome:
    """Run (or resume) a search and record it in MLflow.

    Raises:
        MmbenchError: bad task, data, restriction or a study that belongs to another task/space.
    """
    from mmbench.registry import get_registry

    registry = registry or get_registry()
    reporter = reporter or QuietReporter()
    plan = plan_search(settings, registry)
    quiet_libraries()
    study = open_study(settings, plan, registry)
    tracker = Tracker(settings.store.tracking_uri)
    experiment_id, parent_run_id = start_tracking(tracker, settings, plan, registry, study=study)
    bind_stale_handler(study, tracker, requeue=settings.space.sampler != "grid")
    recover_interrupted(study, tracker, experiment_id, requeue=settings.space.sampler != "grid")
    objective = Objective(
        plan.task, plan.data, plan.space, registry, tracker, experiment_id=experiment_id, parent_run_id=parent_run_id,
        study_name=plan.study_name, reporter=reporter, seed=settings.seed,
        devices=DevicePool.for_search(settings.compute.device, n_jobs=settings.compute.n_jobs, trials_per_gpu=settings.compute.trials_per_gpu),
        objectives=plan.objectives, n_trials=plan.n_trials, compile=settings.compute.compile,
        features=FeatureCache.from_options(settings.compute.cache_dir, settings.compute.cache_size_gb, device=settings.compute.device),
    )
    registry.manager.hook.mmbench_search_started(task=plan.task.name, study_name=plan.study_name, settings=public_settings(settings))
    reporter.search_started(plan.task.name, plan.study_name, plan.n_trials, finished_count(study))
    completed = False
    try:
        with graceful_stop():
            optimize(study, objective, plan, settings)
        completed = True
    finally:
        reporter.search_finished()
        outcome = finalize(study, objective, tracker, settings, plan, experiment_id, parent_run_id, completed=completed)
    registry.manager.hook.mmbench_search_finished(
        task=plan.task.name, study_name=plan.study_name, n_trials=objective.n_run, best_value=outcome.best_value
    )
    return outcome


def run_suite(settings: SearchSettings, tasks: Sequence[str], *, registry: Registry | None = None,
              reporter_for: Callable[[str], Reporter] | None = None) -> tuple[list[SearchOutcome], dict[str, str]]:
    """Search several tasks one after another (``--all-tasks`` or a list), into one tracking store.

    A task that fails with a user error (e.g. its data is missing) is reported and skipped so
    the others still run. With ``--study NAME`` each task's study is ``NAME-<task>``.

    Returns:
        The outcomes, and task -> error message for the tasks that failed.
    """
    from mmbench.registry import get_registry

    registry = registry or get_registry()
    outcomes: list[SearchOutcome] = []
    failures: dict[str, str] = {}
    for task in tasks:
        study = f"{settings.store.study}-{Path(task).stem}" if settings.store.study and len(tasks) > 1 else settings.store.study
        one = settings.replace(task=task, study=study)
        try:
            outcomes.append(run_search(one, registry=registry, reporter=reporter_for(task) if reporter_for else None))
        except MmbenchError as error:
            failures[task] = str(error)
    return outcomes, failures


def all_task_names(registry: Registry) -> list[str]:
    """Every built-in and plugin-provided task, sorted (``--all-tasks``)."""
    from mmbench.tasks.files import builtin_tasks

    return sorted(builtin_tasks(registry))


# -- the steps ----------------------------------------------------------------------------------


def plan_search(settings: SearchSettings, registry: Registry) -> SearchPlan:
    """Resolve the task, load its data and build the (restricted) space and budget."""
    from mmbench.tasks.loading import load_task_data
    from mmbench.data.storage.spill import memory_budget
    from mmbench.tasks.files import resolve_task

    task = resolve_task(settings.task, registry)
    budget = memory_budget(settings.compute.memory_budget_gb)  # a bad value fails before the data loads
    data = load_task_data(task, registry, root=settings.data_root)
    data.memory_budget = budget
    defaults = dict(task.search)
    space = build_search_space(
        data.schema,
        registry,
        fusions=settings.space.fusions or defaults.get("fusions"),
        encoders=settings.space.encoders or defaults.get("encoders"),
        fixed={**defaults.get("fixed", {}), **settings.space.fixed},
        train_defaults={
            "max_epochs": settings.budget.max_epochs or int(defaults.get("max_epochs", DEFAULT_MAX_EPOCHS)),
            "patience": int(defaults.get("patience", DEFAULT_PATIENCE)),
        },
    )
    if defaults.get("batch_sizes"):
        space.train_space["batch_size"] = type(space.train_space["batch_size"])(defaults["batch_sizes"])
    n_trials = settings.budget.n_trials or int(defaults.get("n_trials", DEFAULT_N_TRIALS))
    if settings.space.sampler == "grid" and settings.budget.n_trials is None:
        from mmbench.search.samplers import MAX_GRID_POINTS, grid_values, walk_space

        # a grid search runs every point once: its size is the budget
        n_trials = len(walk_space(lambda t: space.suggest(t, registry, seed=0), grid_values, limit=MAX_GRID_POINTS))
    return SearchPlan(task, data, space, settings.store.study or task.name, n_trials,
                      settings.budget.timeout or defaults.get("timeout"), tuple(settings.space.objectives))


def open_study(settings: SearchSettings, plan: SearchPlan, registry: Registry) -> optuna.Study:
    """Create or load the study; refuse one that belongs to another task, space or objectives.

    Raises:
        ConfigError: an unusable storage URL, or a study name already used differently.
    """
    n_objectives = len(plan.objectives)
    sampler = make_sampler(settings.space.sampler, seed=settings.seed, n_objectives=n_objectives,
                           suggest=lambda trial: plan.space.suggest(trial, registry, seed=0))
    pruner = make_pruner(settings.space.pruner, n_objectives=n_objectives)
    heartbeat = DEFAULT_HEARTBEAT if settings.store.heartbeat is None else settings.store.heartbeat
    study = create_or_load_study(settings.store.storage, study_name=plan.study_name, directions=directions(plan.objectives),
                                 sampler=sampler, pruner=pruner, heartbeat=heartbeat)
    _claim_or_check(study, plan)
    return study


def _claim_or_check(study: optuna.Study, plan: SearchPlan) -> None:
    attrs = study.user_attrs  # one read: workers starting together may be claiming the study meanwhile
    owner = attrs.get(STUDY_TASK)
    objectives = ",".join(plan.objectives)
    if owner is None:
        # the owner last: a worker that sees it also sees the space and objectives it is checked against
        study.set_user_attr(STUDY_SPACE, plan.space.signature())
        study.set_user_attr(STUDY_OBJECTIVES, objectives)
        study.set_user_attr(STUDY_TASK, plan.task.name)
        return
    name = plan.study_name
    if owner != plan.task.name:
        raise ConfigError(f"study '{name}' belongs to task '{owner}', not '{plan.task.name}'; choose another --study")
    if attrs.get(STUDY_SPACE) != plan.space.signature():
        raise ConfigError(
            f"study '{name}' was created with a different search space (fusions, encoders or --set); "
            "resume it with the same options or choose another --study"
        )
    if attrs.get(STUDY_OBJECTIVES, "metric") != objectives:
        raise ConfigError(
            f"study '{name}' optimises --objectives {attrs.get('mmbench.objectives', 'metric')}, "
            f"not {objectives}; resume it with the same objectives or choose another --study"
        )


def start_tracking(tracker: Tracker, settings: SearchSettings, plan: SearchPlan, registry: Registry, *,
                   study: optuna.Study | None = None) -> tuple[str, str]:
    """The task's experiment and the study's parent run (found again on resume; one for all workers of ``study``)."""
    experiment_id = tracker.experiment_id(plan.task.name)
    find_or_create = functools.partial(
        tracker.study_run,
        experiment_id,
        plan.study_name,
        tags={f"{TAG}task": plan.task.name, f"{TAG}fingerprint": plan.data.fingerprint,
              f"{TAG}storage": redact_url(settings.store.storage), f"{TAG}objectives": ",".join(plan.objectives)},
        params=study_params(settings, plan, registry),
    )
    parent_run_id = find_or_create() if study is None else shared_parent_run(study, tracker, find_or_create)
    tracker.log_dict(parent_run_id, dict(plan.task.raw), "task.yaml")
    return experiment_id, parent_run_id


def optimize(study: optuna.Study, objective: Objective, plan: SearchPlan, settings: SearchSettings) -> None:
    """Run trials until ``plan.n_trials`` count as finished (this worker's share), or the timeout."""
    remaining = max(0, plan.n_trials - finished_count(study))
    if not remaining:
        return
    study.optimize(
        objective,
        n_trials=remaining,
        timeout=plan.timeout,
        n_jobs=objective.devices.concurrency,
        catch=(Exception,),
        callbacks=[StopAtBudget(plan.n_trials), stop_callback],
        gc_after_trial=False,
    )


def finalize(study: optuna.Study, objective: Objective, tracker: Tracker, settings: SearchSettings, plan: SearchPlan,
             experiment_id: str, parent_run_id: str, *, completed: bool) -> SearchOutcome:
    """Record the best trial on the parent run, log the best model and the plots, close the run.

    After an interruption (``completed=False``) only the bookkeeping runs, so Ctrl-C is quick.
    """
    from mmbench.tracking.artifacts import log_best_model, log_study_plots

    best = best_trial(study)
    pareto = [t.number for t in study.best_trials] if len(plan.objectives) > 1 and best is not None else []
    if best is not None:
        tracker.log_metrics(parent_run_id, {"best_val_score": best.values[0]})
        tracker.set_tags(parent_run_id, {f"{TAG}best_trial": best.number, f"{TAG}best_run_id": best.user_attrs.get(RUN_ID, "")})
    if pareto:
        tracker.set_tags(parent_run_id, {f"{TAG}pareto_trials": ",".join(map(str, pareto))})
    if completed:
        mine = objective.best
        if settings.output.log_model and mine is not None and best is not None and mine.number == best.number:
            log_best_model(tracker, mine, plan.data.schema.classes)
        if settings.output.plots:
            log_study_plots(tracker, parent_run_id, study)
    objective.best = None  # release the model's memory
    if plan.data.notes:  # skipped rows, ignored columns, and the modalities trials streamed (known only now)
        tracker.log_dict(parent_run_id, dict(plan.data.notes), "data_notes.json")
    tracker.finish(parent_run_id, "COMPLETE" if completed else "KILLED")
    return SearchOutcome(
        task=plan.task.name,
        study=plan.study_name,
        n_trials=len(study.trials),
        n_complete=sum(1 for t in study.trials if t.state.name == "COMPLETE"),
        best_value=None if best is None else best.values[0],
        best_config=None if best is None else best.user_attrs.get(CONFIG),
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        best_run_id=None if best is None else best.user_attrs.get(RUN_ID),
        pareto_trials=pareto,
    )


# -- helpers ------------------------------------------------------------------------------------


def quiet_libraries() -> None:
    """Keep Optuna's and MLflow's info logs and experimental-feature warnings out of the user's way."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for name in ("mlflow", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


def best_trial(study: optuna.Study) -> Any:
    """The COMPLETE trial with the best (first) objective value, or ``None``."""
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not complete:
        return None
    return max(complete, key=lambda t: t.values[0] if math.isfinite(t.values[0]) else -math.inf)


def study_params(settings: SearchSettings, plan: SearchPlan, registry: Registry) -> dict[str, Any]:
    """The parent run's params: search settings, task, data sizes and fingerprint, plugin versions."""
    params: dict[str, Any] = {f"search.{k}": v for k, v in public_settings(settings).items()}
    params["search.n_trials"] = plan.n_trials
    params["task"] = plan.task.name
    params["task.file"] = str(plan.task.path) if getattr(plan.task, "path", None) else ""
    params["data.fingerprint"] = plan.data.fingerprint
    params.update({f"data.{split}_rows": n for split, n in plan.data.split_sizes.items()})
    params.update({f"plugin.{p.name}": f"{p.distribution} {p.version}" for p in registry.plugins.values()})
    return params


def public_settings(settings: SearchSettings) -> dict[str, Any]:
    """Settings safe to log: URLs redacted."""
    return {
        "sampler": settings.space.sampler,
        "pruner": settings.space.pruner,
        "n_trials": settings.budget.n_trials,
        "timeout": settings.budget.timeout,
        "seed": settings.seed,
        "device": settings.compute.device,
        "n_jobs": settings.compute.n_jobs,
        "trials_per_gpu": settings.compute.trials_per_gpu,
        "objectives": ",".join(settings.space.objectives),
        "storage": redact_url(settings.store.storage),
        "tracking_uri": redact_url(settings.store.tracking_uri),
        "fusions": list(settings.space.fusions or []),
        "encoders": {k: list(v) for k, v in (settings.space.encoders or {}).items()},
        "fixed": dict(settings.space.fixed),
        "cache_size_gb": settings.compute.cache_size_gb,
        "compile": settings.compute.compile,
    }
