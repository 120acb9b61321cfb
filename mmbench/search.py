"""The Optuna study behind ``mmbench search``: plan, open or resume, optimise, finalise.

One study per (task, study name). :func:`run_search` is a sequence of small steps, each its own
function so that reliability layers (heartbeats, signal handling, other storages) can wrap
one step without touching the rest:

1. :func:`plan_search` - task, data, search space and budget from task file + CLI;
2. :func:`open_study` - create or load the study; refuse one of another task, space or objectives;
3. :func:`start_tracking` - the task's MLflow experiment and the study's parent run;
4. :func:`~mmbench.resume.recover_interrupted` - close trials left RUNNING by dead workers;
5. :func:`optimize` - run trials (:class:`~mmbench.objective.Objective`) until the budget is spent;
6. :func:`finalize` - best trial, best model, plots, parent run closed.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.cache import FeatureCache
from mmbench.config import SearchSpace, build_search_space
from mmbench.devices import DevicePool, check_concurrency
from mmbench.errors import ConfigError, MmbenchError
from mmbench.objective import Objective, directions, parse_objectives
from mmbench.progress import QuietReporter, Reporter
from mmbench.resume import StopAtBudget, finished_count, recover_interrupted
from mmbench.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from mmbench.signals import graceful_stop, stop_callback
from mmbench.storage import DEFAULT_HEARTBEAT, bind_stale_handler, create_or_load_study, shared_parent_run
from mmbench.tracking import DEFAULT_STORAGE, DEFAULT_TRACKING_URI, TAG, Tracker, redact_url

if TYPE_CHECKING:
    import optuna

    from mmbench.data.prepared import PreparedData
    from mmbench.registry import Registry
    from mmbench.tasks import Task

__all__ = ["PRUNERS", "SAMPLERS", "SearchOutcome", "SearchPlan", "SearchSettings", "run_search", "run_suite"]

DEFAULT_N_TRIALS = 10
DEFAULT_MAX_EPOCHS = 10
DEFAULT_PATIENCE = 3


@dataclass
class SearchSettings:
    """What ``mmbench search`` was asked to do (CLI flags override the task's ``search:``).

    Attributes:
        task: a built-in task name or a path to a task file.
        n_trials: target number of finished trials in the study (resume counts earlier ones).
        timeout: stop starting trials after this many seconds.
        study: the Optuna study name (default: the task name).
        storage: Optuna storage URL.
        tracking_uri: MLflow tracking URI.
        seed: seed of the sampler and of every trial (trial seed = seed + trial number).
        device: ``auto``, ``cpu``, ``cuda``.
        data_root: where the task's data files live.
        fusions: allowed fusions (default: the task's, else all).
        encoders: modality -> allowed encoders.
        fixed: parameter -> value not searched.
        sampler: one of :data:`SAMPLERS`.
        pruner: one of :data:`PRUNERS`.
        max_epochs: epochs per trial (default: the task's).
        n_jobs: trials run in parallel threads of this process (results then depend on timing).
        objectives: ``"metric"`` or ``"metric,latency"`` / ``"metric,params"`` (Pareto search).
        plots: log Optuna's study plots on the parent run at the end.
        log_model: log the best trial's model (PyTorch flavour + safetensors) at the end.
        heartbeat: seconds between heartbeats of running trials (database storages; 0 = off,
            default :data:`mmbench.storage.DEFAULT_HEARTBEAT`): a worker silent for twice that is
            presumed dead, its trial failed and queued again.
        cache_dir: folder of the frozen-encoder feature cache (default: the user cache folder,
            see :mod:`mmbench.cache`).
        cache_size_gb: bound of that folder (least recently used entries evicted); 0 turns
            the feature cache off (frozen encoders then run in every batch).
        memory_budget_gb: preprocessed tensors kept in memory; past it a modality is streamed from
            memory-mapped files (default: ``$MMBENCH_MEMORY_BUDGET_GB`` or half the available
            memory; 0 streams every modality; see :mod:`mmbench.data.spill`).
        compile: train through ``torch.compile``.
        trials_per_gpu: concurrent trials per GPU (small models leave a GPU idle); on a machine
            with several GPUs, ``device="cuda"`` spreads trials over all of them (:mod:`mmbench.devices`).
    """

    task: str
    n_trials: int | None = None
    timeout: float | None = None
    study: str | None = None
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    seed: int = 0
    device: str = "auto"
    data_root: Path | None = None
    fusions: Sequence[str] | None = None
    encoders: Mapping[str, Sequence[str]] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    pruner: str = "hyperband"
    max_epochs: int | None = None
    n_jobs: int = 1
    objectives: str | Sequence[str] = "metric"
    plots: bool = True
    log_model: bool = True
    heartbeat: int | None = None
    cache_dir: Path | None = None
    cache_size_gb: float | None = None
    memory_budget_gb: float | None = None
    compile: bool = False
    trials_per_gpu: int = 1

    def __post_init__(self) -> None:
        from mmbench.errors import unknown_name_message

        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler: {unknown_name_message('sampler', self.sampler, SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner: {unknown_name_message('pruner', self.pruner, PRUNERS)}")
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError(f"--n-trials must be at least 1, got {self.n_trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"--max-epochs must be at least 1, got {self.max_epochs}")
        check_concurrency(n_jobs=self.n_jobs, trials_per_gpu=self.trials_per_gpu)
        text = self.objectives if isinstance(self.objectives, str) else ",".join(self.objectives)
        self.objectives = parse_objectives(text)


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
    tracker = Tracker(settings.tracking_uri)
    experiment_id, parent_run_id = start_tracking(tracker, settings, plan, registry, study=study)
    bind_stale_handler(study, tracker, requeue=settings.sampler != "grid")
    recover_interrupted(study, tracker, experiment_id, requeue=settings.sampler != "grid")
    objective = Objective(
        plan.task, plan.data, plan.space, registry, tracker, experiment_id=experiment_id, parent_run_id=parent_run_id,
        study_name=plan.study_name, reporter=reporter, seed=settings.seed,
        devices=DevicePool.for_search(settings.device, n_jobs=settings.n_jobs, trials_per_gpu=settings.trials_per_gpu),
        objectives=plan.objectives, n_trials=plan.n_trials, compile=settings.compile,
        features=FeatureCache.from_options(settings.cache_dir, settings.cache_size_gb, device=settings.device),
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
        study = f"{settings.study}-{Path(task).stem}" if settings.study and len(tasks) > 1 else settings.study
        one = dataclasses.replace(settings, task=task, study=study, objectives=",".join(settings.objectives))
        try:
            outcomes.append(run_search(one, registry=registry, reporter=reporter_for(task) if reporter_for else None))
        except MmbenchError as error:
            failures[task] = str(error)
    return outcomes, failures


def all_task_names(registry: Registry) -> list[str]:
    """Every built-in and plugin-provided task, sorted (``--all-tasks``)."""
    from mmbench.tasks import builtin_tasks

    return sorted(builtin_tasks(registry))


# -- the steps ----------------------------------------------------------------------------------


def plan_search(settings: SearchSettings, registry: Registry) -> SearchPlan:
    """Resolve the task, load its data and build the (restricted) space and budget."""
    from mmbench.data.load import load_task_data
    from mmbench.data.spill import memory_budget
    from mmbench.tasks import resolve_task

    task = resolve_task(settings.task, registry)
    budget = memory_budget(settings.memory_budget_gb)  # a bad value fails before the data loads
    data = load_task_data(task, registry, root=settings.data_root)
    data.memory_budget = budget
    defaults = dict(task.search)
    space = build_search_space(
        data.schema,
        registry,
        fusions=settings.fusions or defaults.get("fusions"),
        encoders=settings.encoders or defaults.get("encoders"),
        fixed={**defaults.get("fixed", {}), **settings.fixed},
        train_defaults={
            "max_epochs": settings.max_epochs or int(defaults.get("max_epochs", DEFAULT_MAX_EPOCHS)),
            "patience": int(defaults.get("patience", DEFAULT_PATIENCE)),
        },
    )
    if defaults.get("batch_sizes"):
        space.train_space["batch_size"] = type(space.train_space["batch_size"])(defaults["batch_sizes"])
    n_trials = settings.n_trials or int(defaults.get("n_trials", DEFAULT_N_TRIALS))
    if settings.sampler == "grid" and settings.n_trials is None:
        from mmbench.samplers import MAX_GRID_POINTS, grid_values, walk_space

        # a grid search runs every point once: its size is the budget
        n_trials = len(walk_space(lambda t: space.suggest(t, registry, seed=0), grid_values, limit=MAX_GRID_POINTS))
    return SearchPlan(task, data, space, settings.study or task.name, n_trials,
                      settings.timeout or defaults.get("timeout"), tuple(settings.objectives))


def open_study(settings: SearchSettings, plan: SearchPlan, registry: Registry) -> optuna.Study:
    """Create or load the study; refuse one that belongs to another task, space or objectives.

    Raises:
        ConfigError: an unusable storage URL, or a study name already used differently.
    """
    n_objectives = len(plan.objectives)
    sampler = make_sampler(settings.sampler, seed=settings.seed, n_objectives=n_objectives,
                           suggest=lambda trial: plan.space.suggest(trial, registry, seed=0))
    pruner = make_pruner(settings.pruner, n_objectives=n_objectives)
    heartbeat = DEFAULT_HEARTBEAT if settings.heartbeat is None else settings.heartbeat
    study = create_or_load_study(settings.storage, study_name=plan.study_name, directions=directions(plan.objectives),
                                 sampler=sampler, pruner=pruner, heartbeat=heartbeat)
    _claim_or_check(study, plan)
    return study


def _claim_or_check(study: optuna.Study, plan: SearchPlan) -> None:
    attrs = study.user_attrs  # one read: workers starting together may be claiming the study meanwhile
    owner = attrs.get("mmbench.task")
    objectives = ",".join(plan.objectives)
    if owner is None:
        # the owner last: a worker that sees it also sees the space and objectives it is checked against
        study.set_user_attr("mmbench.space", plan.space.signature())
        study.set_user_attr("mmbench.objectives", objectives)
        study.set_user_attr("mmbench.task", plan.task.name)
        return
    name = plan.study_name
    if owner != plan.task.name:
        raise ConfigError(f"study '{name}' belongs to task '{owner}', not '{plan.task.name}'; choose another --study")
    if attrs.get("mmbench.space") != plan.space.signature():
        raise ConfigError(
            f"study '{name}' was created with a different search space (fusions, encoders or --set); "
            "resume it with the same options or choose another --study"
        )
    if attrs.get("mmbench.objectives", "metric") != objectives:
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
              f"{TAG}storage": redact_url(settings.storage), f"{TAG}objectives": ",".join(plan.objectives)},
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
    from mmbench.artifacts import log_best_model, log_study_plots

    best = best_trial(study)
    pareto = [t.number for t in study.best_trials] if len(plan.objectives) > 1 and best is not None else []
    if best is not None:
        tracker.log_metrics(parent_run_id, {"best_val_score": best.values[0]})
        tracker.set_tags(parent_run_id, {f"{TAG}best_trial": best.number, f"{TAG}best_run_id": best.user_attrs.get("mlflow_run_id", "")})
    if pareto:
        tracker.set_tags(parent_run_id, {f"{TAG}pareto_trials": ",".join(map(str, pareto))})
    if completed:
        mine = objective.best
        if settings.log_model and mine is not None and best is not None and mine.number == best.number:
            log_best_model(tracker, mine, plan.data.schema.classes)
        if settings.plots:
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
        best_config=None if best is None else best.user_attrs.get("config"),
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
        best_run_id=None if best is None else best.user_attrs.get("mlflow_run_id"),
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
        "sampler": settings.sampler,
        "pruner": settings.pruner,
        "n_trials": settings.n_trials,
        "timeout": settings.timeout,
        "seed": settings.seed,
        "device": settings.device,
        "n_jobs": settings.n_jobs,
        "trials_per_gpu": settings.trials_per_gpu,
        "objectives": ",".join(settings.objectives),
        "storage": redact_url(settings.storage),
        "tracking_uri": redact_url(settings.tracking_uri),
        "fusions": list(settings.fusions or []),
        "encoders": {k: list(v) for k, v in (settings.encoders or {}).items()},
        "fixed": dict(settings.fixed),
        "cache_size_gb": settings.cache_size_gb,
        "compile": settings.compile,
    }
