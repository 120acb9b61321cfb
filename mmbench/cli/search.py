"""``mmbench search``: one study per task (or a suite), then the post-search steps its flags ask for.

Heavy modules are imported inside the command, so ``mmbench --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from mmbench.cli.common import note
from mmbench.errors import ConfigError
from mmbench.tracking.layout import DEFAULT_STORAGE, DEFAULT_TRACKING_URI

DEFAULT_TASK = "synth-mixed"


def parse_encoders(items: list[str]) -> dict[str, list[str]]:
    """``["text=text.gru,text.bow", "image=image.cnn"]`` -> modality -> names."""
    parsed: dict[str, list[str]] = {}
    for item in items:
        modality, sep, names = item.partition("=")
        if not sep or not modality.strip() or not names.strip():
            raise ConfigError(f"--encoders expects MODALITY=NAME[,NAME...], got '{item}'")
        parsed.setdefault(modality.strip(), []).extend(n.strip() for n in names.split(",") if n.strip())
    return parsed


def search(
    tasks: Optional[list[str]] = typer.Argument(
        None, help=f"Task name(s) (see `mmbench tasks`) or task YAML file(s), run one after another [default: {DEFAULT_TASK}]."
    ),
    all_tasks: bool = typer.Option(False, "--all-tasks", help="Run every built-in and plugin task, into one leaderboard."),
    suite: Optional[str] = typer.Option(
        None, "--suite", help="Run every task whose `suites:` names SUITE (e.g. core; see `mmbench tasks`), into one leaderboard."),
    n_trials: Optional[int] = typer.Option(None, "--n-trials", help="Trials in the study (resuming counts finished ones)."),
    timeout: Optional[float] = typer.Option(
        None, "--timeout", help="Soft budget: stop starting new trials after SECONDS (per task); a running trial finishes."),
    time_limit: Optional[float] = typer.Option(
        None, "--time-limit", help="Hard budget: the whole search (data, trials, later stages) ends within SECONDS "
        "(per task); a running trial stops at the deadline with its best epoch. The task's n_trials no longer ends it."),
    preset: Optional[str] = typer.Option(
        None, "--preset", help="fast, medium, best or none: encoders, fusions, epochs and budget split "
        "(docs/search.md) [default: medium on real-data tasks, else none]. Explicit flags win."),
    study: Optional[str] = typer.Option(None, "--study", help="Optuna study name (default: the task name; NAME-<task> for several tasks)."),
    storage: str = typer.Option(DEFAULT_STORAGE, "--storage", help="Optuna storage URL."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help="MLflow tracking URI (sqlite:///..., a folder, http://...)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the sampler and of every trial (reproducible on CPU with --n-jobs 1)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda or cuda:N."),
    data_root: Optional[Path] = typer.Option(None, "--data-root", help="Folder of the task's data files (or $MMBENCH_DATA)."),
    fusions: Optional[str] = typer.Option(None, "--fusions", help="Comma-separated fusions to search, e.g. early,tfn."),
    encoders: list[str] = typer.Option([], "--encoders", help="MODALITY=NAME[,NAME]: encoders to search for a modality (repeatable)."),
    set_: list[str] = typer.Option([], "--set", help="NAME=VALUE: fix a parameter instead of searching it (repeatable)."),
    sampler: str = typer.Option("tpe", "--sampler", help="tpe, random, gp, cmaes (numeric spaces) or grid (small spaces)."),
    pruner: str = typer.Option("hyperband", "--pruner", help="hyperband, median or none."),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help="Epochs per trial (default: the task's)."),
    n_jobs: int = typer.Option(1, "--n-jobs", help="Trials run in parallel in this process."),
    trials_per_gpu: int = typer.Option(
        1, "--trials-per-gpu", help="Concurrent trials per GPU (small models leave a GPU idle); --device cuda spreads "
        "trials over every visible GPU. Ignored on the CPU (use --n-jobs)."),
    batch_trials: int = typer.Option(
        1, "--batch-trials", help="Keep K trials in flight and train those of one model structure as one batched "
        "model (cached features, batchable fusions); 1 runs trials one at a time."),
    objectives: str = typer.Option("metric", "--objectives", help="metric, or metric,latency / metric,params for a Pareto search."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Log Optuna study plots to MLflow at the end."),
    classical: Optional[bool] = typer.Option(
        None, "--classical/--no-classical", help="Before the trials: classical baselines (majority class, LightGBM, "
        "TF-IDF + logistic regression) as leaderboard rows and ensemble members [default: on under --preset medium/best]."),
    ensemble: Optional[bool] = typer.Option(
        None, "--ensemble/--no-ensemble", help="At the end: ensemble selection over the finished runs (validation only) "
        "[default: on under any --preset; never with two --objectives]."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    heartbeat: Optional[int] = typer.Option(
        None, "--heartbeat", help="Seconds between heartbeats of a running trial (database storages; 0 = off) "
        "[default: 60]. A worker silent for twice that is presumed dead: its trial fails and is queued again."),
    cache_dir: Optional[Path] = typer.Option(
        None, "--cache-dir", help="Folder of cached frozen-encoder features (default: the user cache folder, "
        "e.g. ~/.cache/mmbench/features)."),
    cache_size_gb: Optional[float] = typer.Option(
        None, "--cache-size-gb", help="Bound of --cache-dir; least recently used entries are evicted (default: 10). "
        "0 turns the feature cache off."),
    memory_budget_gb: Optional[float] = typer.Option(
        None, "--memory-budget-gb", help="Preprocessed tensors kept in RAM; a modality past it is streamed from "
        "memory-mapped files (default: half the available memory, or $MMBENCH_MEMORY_BUDGET_GB). 0 streams all."),
    compile_: bool = typer.Option(False, "--compile", help="Train through torch.compile (pays off for larger models on a GPU)."),
    robustness: bool = typer.Option(False, "--robustness", help="After the study: robustness and modality contributions of the best trial."),
    baselines: bool = typer.Option(False, "--baselines", help="After the study: unimodal baselines of the best trial (fusion gain)."),
    n_seeds: int = typer.Option(1, "--seeds", help="After the study: rerun the top 3 configurations with N seeds in all (mean ± std)."),
) -> None:
    """Search encoders x fusion x hyperparameters on a task; record every trial in MLflow."""
    from mmbench.search.trials import parse_assignments
    from mmbench.tasks.loading import data_root as resolve_root
    from mmbench.cli.console import table_console
    from mmbench.tracking.leaderboard import leaderboard as query, print_table
    from mmbench.search.progress import default_reporter
    from mmbench.registry import get_registry
    from mmbench.runs.evaluation.steps import post_search_steps, run_post_search
    from mmbench.search.settings import SearchSettings
    from mmbench.search.study import all_task_names, run_search, run_suite
    from mmbench.tracking.tracker import Tracker

    if all_tasks and tasks:
        raise ConfigError("give task names or --all-tasks, not both")
    if n_seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {n_seeds}")
    if suite and (tasks or all_tasks):
        raise ConfigError("give task names, --all-tasks or --suite, not several")
    registry = get_registry()
    if suite:  # every task of the suite, data checked before any work (mmbench.tasks.suites)
        from mmbench.tasks.suites import select_suite

        names = select_suite(suite, registry, resolve_root(data_root))
    else:
        names = all_task_names(registry) if all_tasks else (tasks or [DEFAULT_TASK])
    settings = SearchSettings.of(
        task=names[0],
        n_trials=n_trials,
        timeout=timeout,
        time_limit=time_limit,
        preset=preset,
        study=study,
        storage=storage,
        tracking_uri=tracking_uri,
        seed=seed,
        device=device,
        data_root=resolve_root(data_root),
        fusions=[f.strip() for f in fusions.split(",") if f.strip()] if fusions else None,
        encoders=parse_encoders(encoders) or None,
        fixed=parse_assignments(set_),
        sampler=sampler,
        pruner=pruner,
        max_epochs=max_epochs,
        n_jobs=n_jobs,
        trials_per_gpu=trials_per_gpu,
        batch_trials=batch_trials,
        objectives=objectives,
        plots=plots,
        classical=classical,
        ensemble=ensemble,
        heartbeat=heartbeat,
        cache_dir=cache_dir,
        cache_size_gb=cache_size_gb,
        memory_budget_gb=memory_budget_gb,
        compile=compile_,
    )
    from mmbench.infra.signals import StopRequested

    try:
        if len(names) == 1:  # a single task's error propagates with its own type
            outcomes, failures = [run_search(settings, registry=registry, reporter=default_reporter(quiet))], {}
        else:
            outcomes, failures = run_suite(settings, names, registry=registry, reporter_for=lambda _task: default_reporter(quiet))
    except StopRequested as stop:  # SIGINT/SIGTERM: runs are closed KILLED; say how to resume
        typer.echo(f"error: {stop}", err=True)
        raise typer.Exit(stop.exit_code) from None
    for task_name, message in failures.items():
        typer.echo(f"error: task {task_name} skipped: {message}", err=True)
    steps = post_search_steps(robustness=robustness, baselines=baselines, n_seeds=n_seeds)
    for outcome in (o for o in outcomes if not o.failure_summary):  # after the search (mmbench.runs.evaluation.steps)
        run_post_search(outcome, settings, registry, steps, on_note=note)
    failed_searches = {o.task: o.failure_summary for o in outcomes if o.failure_summary}
    shown = [o for o in outcomes if o.task not in failed_searches]  # not another study's rows as if this one's
    if not quiet and shown:
        rows = [row for outcome in shown for row in query(Tracker(tracking_uri), task=outcome.task)]
        print_table(rows, table_console())
    for task_name, summary in failed_searches.items():
        typer.echo(f"error: task {task_name}: {summary}", err=True)
    if failures:
        raise ConfigError(f"{len(failures)} of {len(names)} tasks failed: {', '.join(failures)}")
    if failed_searches:
        raise typer.Exit(1)  # the search ran but found nothing: not a usage error


def register(app: typer.Typer) -> None:
    """Add ``search`` to the ``mmbench`` app."""
    app.command()(search)
