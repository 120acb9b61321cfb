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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.train.features.store import FeatureCache
from mmbench.search.trials import CLASS_WEIGHT_SPACE, IMBALANCE_RATIO, build_search_space
from mmbench.infra.devices import DevicePool
from mmbench.errors import ConfigError, MmbenchError
from mmbench.search.attrs import CONFIG, RUN_ID, STUDY_OBJECTIVES, STUDY_SPACE, STUDY_TASK, directions
from mmbench.search.budget import Budget
from mmbench.search.classical_stage import classical_before_search, wanted as classical_wanted
from mmbench.search.ensemble_stage import ensemble_after_search, wanted as ensemble_wanted
from mmbench.search.objective import Objective, TrialContext
from mmbench.search.plan import SearchOutcome, SearchPlan
from mmbench.search.portfolio import enqueue_portfolio, portfolio_params
from mmbench.search.presets import freeze_pretrained, narrow_space, preset_for
from mmbench.search.stages import finetune_stage, stage_shares, stage_timeout
from mmbench.search.failures import failure_summary
from mmbench.search.validate import check_search_block
from mmbench.search.settings import DEFAULT_MAX_EPOCHS, DEFAULT_N_TRIALS, DEFAULT_PATIENCE, SearchSettings
from mmbench.search.progress import QuietReporter, Reporter
from mmbench.search.optuna_logs import quiet_libraries, route_optuna_logs
from mmbench.search.resume import StopAtBudget, finished_count, process_seed, recover_interrupted, requeue_own_interrupted
from mmbench.search.samplers import PRUNERS, SAMPLERS, make_pruner, make_sampler
from mmbench.infra.signals import graceful_stop, stop_callback
from mmbench.search.storage import DEFAULT_HEARTBEAT, bind_stale_handler, create_or_load_study, shared_parent_run
from mmbench.infra.secrets import redact_url
from mmbench.tracking.ranking import rank_key
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    import optuna

    from mmbench.registry import Registry

__all__ = ["PRUNERS", "SAMPLERS", "SearchOutcome", "SearchPlan", "SearchSettings", "run_search", "run_suite"]


def run_search(settings: SearchSettings, *, registry: Registry | None = None, reporter: Reporter | None = None) -> SearchOutcome:
    """Run (or resume) a search and record it in MLflow.

    Raises:
        MmbenchError: bad task, data, restriction or a study that belongs to another task/space.
    """
    from mmbench.registry import get_registry

    started = time.monotonic()  # a --time-limit counts data preparation too
    registry = registry or get_registry()
    reporter = reporter or QuietReporter()
    plan = plan_search(settings, registry, started=started)
    if plan.data.folds and settings.compute.batch_trials > 1:
        raise ConfigError("--batch-trials does not combine with split.folds (a k-fold trial trains its folds one after another); drop one")
    from mmbench.data.inspection import summary_lines

    for line in summary_lines(plan.data, group_column=plan.task.split.get("group_column")):  # the data, before compute
        reporter.note(line)
    quiet_libraries()
    study = open_study(settings, plan, registry)
    if plan.preset is not None and plan.preset.portfolio and settings.space.sampler != "grid":
        enqueue_portfolio(study, portfolio_params(plan.space, plan.data.schema, registry))
    tracker = Tracker(settings.store.tracking_uri)
    experiment_id, parent_run_id = start_tracking(tracker, settings, plan, registry, study=study)
    bind_stale_handler(study, tracker, requeue=settings.space.sampler != "grid")
    recover_interrupted(study, tracker, experiment_id, requeue=settings.space.sampler != "grid")
    objective = Objective(TrialContext(
        plan.task, plan.data, plan.space, registry, tracker, experiment_id=experiment_id, parent_run_id=parent_run_id,
        study_name=plan.study_name, reporter=reporter, seed=settings.seed,
        devices=DevicePool.for_search(settings.compute.device, n_jobs=settings.compute.n_jobs, trials_per_gpu=settings.compute.trials_per_gpu),
        objectives=plan.objectives, n_trials=plan.n_trials or 0, compile=settings.compute.compile,
        features=FeatureCache.from_options(settings.compute.cache_dir, settings.compute.cache_size_gb, device=settings.compute.device),
    ))
    registry.manager.hook.mmbench_search_started(task=plan.task.name, study_name=plan.study_name, settings=public_settings(settings))
    reporter.search_started(plan.task.name, plan.study_name, plan.n_trials or 0, finished_count(study))
    if plan.budget is not None and hasattr(reporter, "search_budget"):
        reporter.search_budget(plan.budget.deadline)
    completed = False
    try:
        with graceful_stop(), route_optuna_logs(reporter):
            stage_args = {"experiment_id": experiment_id, "parent_run_id": parent_run_id, "seed": settings.seed,
                          "note": getattr(reporter, "note", lambda _text: None)}
            if classical_wanted(settings.output.classical, plan.preset.name if plan.preset else None):
                classical_before_search(tracker, plan, **stage_args)  # cheap, strong rows first (mmbench.search.classical_stage)
            optimize(study, objective, plan, settings, on_note=getattr(reporter, "note", None))
            finetune_stage(study, objective, plan.budget, note=stage_args["note"])  # frozen best, end to end (mmbench.search.stages)
            if ensemble_wanted(settings.output.ensemble, plan.preset, plan.objectives):
                ensemble_after_search(tracker, plan, **stage_args)  # over every finished run (mmbench.search.ensemble_stage)
        completed = True
    finally:
        reporter.search_finished()
        if settings.space.sampler != "grid":  # grid hands an interrupted point out again by itself
            requeue_own_interrupted(study)
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


def plan_search(settings: SearchSettings, registry: Registry, *, started: float | None = None) -> SearchPlan:
    """Resolve the task, load its data and build the (restricted) space and budget.

    ``started`` (``time.monotonic()``) is when a ``--time-limit`` clock started (default: now).
    """
    from mmbench.tasks.loading import load_task_data
    from mmbench.data.storage.spill import memory_budget
    from mmbench.tasks.files import metric_for, resolve_task

    task = resolve_task(settings.task, registry)
    check_search_block(task.search, f"{task.path or task.name}: search")  # the flags' rules, before any work
    preset = preset_for(task, settings.budget.preset)
    budget = memory_budget(settings.compute.memory_budget_gb)  # a bad value fails before the data loads
    data = load_task_data(task, registry, root=settings.data_root)
    task = metric_for(task, data.schema.task_type)  # an inferred regression task is scored by rmse
    data.memory_budget = budget
    defaults = dict(task.search)
    space = build_search_space(
        data.schema,
        registry,
        fusions=settings.space.fusions or defaults.get("fusions"),
        encoders=settings.space.encoders or defaults.get("encoders"),
        fixed={**defaults.get("fixed", {}), **settings.space.fixed},
        train_defaults={
            "max_epochs": settings.budget.max_epochs or (preset and preset.max_epochs) or int(defaults.get("max_epochs", DEFAULT_MAX_EPOCHS)),
            "patience": (preset and preset.patience) or int(defaults.get("patience", DEFAULT_PATIENCE)),
        },
    )
    if preset is not None:  # narrows what the task file allows; explicit flags are not narrowed
        narrow_space(space, preset, data.schema, fusions_given=bool(settings.space.fusions),
                     encoders_given=settings.space.encoders or {})
        freeze_pretrained(space, registry)  # heads on cached features; the fine-tuning stage unfreezes the best
    if data.schema.task_type == "classification":
        counts = [int(c) for c in data.labels("train").bincount(minlength=data.schema.n_classes)]
        if min(counts) == 0 or max(counts) / min(counts) >= IMBALANCE_RATIO:  # 82/18 reviews: weighting may help
            space.train_space.update(CLASS_WEIGHT_SPACE)
    if defaults.get("batch_sizes"):
        space.train_space["batch_size"] = type(space.train_space["batch_size"])(defaults["batch_sizes"])
    time_limit = settings.budget.time_limit
    # under a hard budget the budget decides; the task file's n_trials would end the search early
    n_trials = settings.budget.n_trials or (None if time_limit else int(defaults.get("n_trials", DEFAULT_N_TRIALS)))
    if settings.space.sampler == "grid" and settings.budget.n_trials is None:
        from mmbench.search.samplers import MAX_GRID_POINTS, grid_values, walk_space

        # a grid search runs every point once: its size is the budget
        n_trials = len(walk_space(lambda t: space.suggest(t, registry, seed=0), grid_values, limit=MAX_GRID_POINTS))
    shares = {"shares": stage_shares(preset.stages, space, registry, time_limit=time_limit, device=settings.compute.device)} \
        if preset is not None and preset.stages else {}
    return SearchPlan(task, data, space, settings.store.study or task.name, n_trials,
                      settings.budget.timeout or defaults.get("timeout"), tuple(settings.space.objectives),
                      budget=Budget(time_limit, **shares, started=started or time.monotonic()) if time_limit else None,
                      preset=preset)


def open_study(settings: SearchSettings, plan: SearchPlan, registry: Registry) -> optuna.Study:
    """Create or load the study; refuse one that belongs to another task, space or objectives.

    Raises:
        ConfigError: an unusable storage URL, or a study name already used differently.
    """
    n_objectives = len(plan.objectives)
    pruner = make_pruner(settings.space.pruner, n_objectives=n_objectives)

    def sampler(seed: int) -> optuna.samplers.BaseSampler:
        return make_sampler(settings.space.sampler, seed=seed, n_objectives=n_objectives,
                            suggest=lambda trial: plan.space.suggest(trial, registry, seed=0),
                            concurrent=settings.compute.n_jobs > 1 or settings.compute.batch_trials > 1)

    sampler(settings.seed)  # a sampler that cannot search this space fails before the study exists
    heartbeat = DEFAULT_HEARTBEAT if settings.store.heartbeat is None else settings.store.heartbeat
    study = create_or_load_study(settings.store.storage, study_name=plan.study_name, directions=directions(plan.objectives, plan.task.metric),
                                 sampler=None, pruner=pruner, heartbeat=heartbeat)
    _claim_or_check(study, plan)
    # seeded from --seed and the study's state, so a resumed study does not repeat its first samples
    study.sampler = sampler(process_seed(settings.seed, study))
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
    from mmbench.tracking.balance import record_balance

    record_balance(tracker, parent_run_id, plan.data, metric=plan.task.metric)  # the leaderboard's class balance and majority flag
    return experiment_id, parent_run_id


def optimize(study: optuna.Study, objective: Objective, plan: SearchPlan, settings: SearchSettings, *,
             on_note: Callable[[str], None] | None = None) -> None:
    """Run trials until ``plan.n_trials`` count as finished (this worker's share), the timeout, or the
    search stage's deadline (``--time-limit``: a running trial stops there, keeping its best epoch)."""
    remaining = None if plan.n_trials is None else max(0, plan.n_trials - finished_count(study))
    if remaining == 0:
        return
    run, timeout = stage_timeout(plan.budget, "search", objective, plan.timeout, on_note)
    if not run:
        return
    if settings.compute.batch_trials > 1:  # K trials asked at once, trained together (mmbench.search.batched)
        from mmbench.search.batched import optimize_batched

        optimize_batched(study, objective, batch_trials=settings.compute.batch_trials, n_trials=remaining, timeout=timeout)
        return
    study.optimize(
        objective,
        n_trials=remaining,
        timeout=timeout,
        n_jobs=objective.context.devices.concurrency,
        catch=(Exception,),
        callbacks=[stop_callback] if plan.n_trials is None else [StopAtBudget(plan.n_trials), stop_callback],
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
        if settings.output.plots and (plan.budget is None or plan.budget.remaining() > PLOTS_RESERVE_S):
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
        failure_summary=failure_summary(study.get_trials(deepcopy=False)),
    )


# -- helpers ------------------------------------------------------------------------------------

#: Seconds of ``--time-limit`` left below which the study plots (plotly, several seconds) are skipped.
PLOTS_RESERVE_S = 10.0



def best_trial(study: optuna.Study) -> Any:
    """The COMPLETE trial with the best (first) objective value, the earliest among equals (:mod:`mmbench.tracking.ranking`), or ``None``."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)) if t.values]
    if not complete:
        return None
    sign = -1.0 if study.directions[0] == StudyDirection.MINIMIZE else 1.0  # an error metric (rmse) is minimised
    return max(complete, key=lambda t: rank_key(sign * t.values[0], t.number))


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
        "time_limit": settings.budget.time_limit,
        "preset": settings.budget.preset,
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
        "batch_trials": settings.compute.batch_trials,
    }
