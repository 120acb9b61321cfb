"""The ``mmbench`` command line (typer + rich).

Heavy modules (torch, mlflow, optuna, transformers, torchmetrics) are imported inside the
commands, so ``mmbench --help`` stays instant. User errors (:class:`MmbenchError`) print one
line and exit with code 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer

from mmbench.errors import ConfigError, MmbenchError

app = typer.Typer(
    name="mmbench",
    help="AutoML for multimodal learning: search encoders, fusion strategies and hyperparameters; "
    "compare them across benchmark tasks.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

DEFAULT_TASK = "synth-mixed"
_FORMAT_TABLE_JSON = ("table", "json")


def _check_format(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ConfigError(f"--format must be one of {', '.join(allowed)}, got '{value}'")
    return value


def _parse_encoders(items: list[str]) -> dict[str, list[str]]:
    """``["text=text.gru,text.bow", "image=image.cnn"]`` -> modality -> names."""
    parsed: dict[str, list[str]] = {}
    for item in items:
        modality, sep, names = item.partition("=")
        if not sep or not modality.strip() or not names.strip():
            raise ConfigError(f"--encoders expects MODALITY=NAME[,NAME...], got '{item}'")
        parsed.setdefault(modality.strip(), []).extend(n.strip() for n in names.split(",") if n.strip())
    return parsed


@app.command()
def search(
    tasks: Optional[list[str]] = typer.Argument(
        None, help=f"Task name(s) (see `mmbench tasks`) or task YAML file(s), run one after another [default: {DEFAULT_TASK}]."
    ),
    all_tasks: bool = typer.Option(False, "--all-tasks", help="Run every built-in and plugin task, into one leaderboard."),
    suite: Optional[str] = typer.Option(
        None, "--suite", help="Run every task whose `suites:` names SUITE (e.g. core; see `mmbench tasks`), into one leaderboard."),
    n_trials: Optional[int] = typer.Option(None, "--n-trials", help="Trials in the study (resuming counts finished ones)."),
    timeout: Optional[float] = typer.Option(None, "--timeout", help="Stop starting new trials after SECONDS (per task)."),
    study: Optional[str] = typer.Option(None, "--study", help="Optuna study name (default: the task name; NAME-<task> for several tasks)."),
    storage: str = typer.Option("sqlite:///optuna.db", "--storage", help="Optuna storage URL."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", "--tracking-uri", help="MLflow tracking URI (sqlite:///..., a folder, http://...)."),
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
    objectives: str = typer.Option("metric", "--objectives", help="metric, or metric,latency / metric,params for a Pareto search."),
    plots: bool = typer.Option(True, "--plots/--no-plots", help="Log Optuna study plots to MLflow at the end."),
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
    from mmbench.tracking.leaderboard import leaderboard as query, print_table
    from mmbench.search.progress import default_reporter
    from mmbench.registry import get_registry
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
        study=study,
        storage=storage,
        tracking_uri=tracking_uri,
        seed=seed,
        device=device,
        data_root=resolve_root(data_root),
        fusions=[f.strip() for f in fusions.split(",") if f.strip()] if fusions else None,
        encoders=_parse_encoders(encoders) or None,
        fixed=parse_assignments(set_),
        sampler=sampler,
        pruner=pruner,
        max_epochs=max_epochs,
        n_jobs=n_jobs,
        trials_per_gpu=trials_per_gpu,
        objectives=objectives,
        plots=plots,
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
    if robustness or baselines or n_seeds != 1:  # holistic evaluation, after the search (mmbench.runs.evaluation)
        from mmbench.runs.evaluation import post_search

        for outcome in outcomes:
            post_search(outcome, settings, registry, robustness=robustness, baselines=baselines, n_seeds=n_seeds,
                        on_note=lambda text: typer.echo(f"note: {text}", err=True))
    if not quiet and outcomes:
        rows = [row for outcome in outcomes for row in query(Tracker(tracking_uri), task=outcome.task)]
        print_table(rows)
    if failures:
        raise ConfigError(f"{len(failures)} of {len(names)} tasks failed: {', '.join(failures)}")


@app.command("leaderboard")
def leaderboard_command(
    task: Optional[str] = typer.Option(None, "--task", help="Only this task."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="Only combinations with this fusion."),
    top: Optional[int] = typer.Option(None, "--top", help="Only the best K combinations per task."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    tracking_uri: str = typer.Option("sqlite:///mlflow.db", "--tracking-uri", help="MLflow tracking URI."),
) -> None:
    """Rank combinations per task by validation metric (test beside it), and across tasks."""
    from mmbench.tracking.leaderboard import FORMATS, leaderboard, print_table, render
    from mmbench.tracking.tracker import Tracker

    _check_format(fmt, FORMATS)
    if top is not None and top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    _require_store(tracking_uri)
    rows = leaderboard(Tracker(tracking_uri), task=task, fusion=fusion, top=top)
    if fmt == "table":
        print_table(rows)
    else:
        sys.stdout.write(render(rows, fmt))


@app.command()
def plugins(fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List loaded plugins and the encoders, fusions and dataset providers they provide."""
    from mmbench.registry import get_registry

    _check_format(fmt, _FORMAT_TABLE_JSON)
    registry = get_registry()
    entries = []
    for kind, names, getter in (
        ("encoder", registry.list_encoders(), registry.get_encoder),
        ("fusion", registry.list_fusions(), registry.get_fusion),
        ("dataset", registry.list_datasets(), registry.get_dataset),
    ):
        for name in names:
            cls = getter(name)
            entries.append({
                "kind": kind,
                "name": name,
                "modality": getattr(cls, "modality", None) if kind == "encoder" else None,
                "plugin": registry.owner(kind, name),
                "description": cls.description,
                "paper": getattr(cls, "paper", ""),
                "hyperparameters": {k: v.describe() for k, v in cls.space.items()},
                **({"options": dict(cls.options)} if kind == "dataset" else {}),
            })
    plugin_list = [{"name": p.name, "distribution": p.distribution, "version": p.version} for p in registry.plugins.values()]
    if fmt == "json":
        print(json.dumps({"plugins": plugin_list, "components": entries}, indent=2))
        return
    from rich.table import Table

    from mmbench.cli.console import table_console

    console = table_console()
    table = Table(title="plugins", title_justify="left")
    for column in ("plugin", "distribution", "version"):
        table.add_column(column)
    for p in plugin_list:
        table.add_row(p["name"], p["distribution"], p["version"])
    console.print(table)
    table = Table(title="components", title_justify="left")
    for column in ("kind", "name", "plugin", "hyperparameters", "description"):
        table.add_column(column)
    for e in entries:
        hyper = ", ".join(f"{k}: {v}" for k, v in e["hyperparameters"].items()) or "-"
        table.add_row(e["kind"], e["name"], e["plugin"], hyper, e["description"])
    console.print(table)


@app.command()
def tasks(fmt: str = typer.Option("table", "--format", help="table or json.")) -> None:
    """List built-in and plugin-provided tasks."""
    from mmbench.registry import get_registry
    from mmbench.tasks.suites import suites_of
    from mmbench.tasks.files import builtin_tasks

    _check_format(fmt, _FORMAT_TABLE_JSON)
    found = builtin_tasks(get_registry())
    entries = [
        {
            "name": t.name,
            "provider": t.provider,
            "metric": t.metric,
            "label": t.label,
            "modalities": t.raw.get("sizes", {}).get("modalities") or sorted(set(t.modalities.values())),
            "rows": t.raw.get("sizes", {}).get("rows"),
            "suites": suites_of(t),
            "description": t.description,
            "path": str(t.path),
        }
        for t in sorted(found.values(), key=lambda t: t.name)
    ]
    if fmt == "json":
        print(json.dumps(entries, indent=2))
        return
    from rich.table import Table

    from mmbench.cli.console import table_console

    table = Table(title="tasks", title_justify="left")
    for column in ("name", "provider", "modalities", "rows", "metric", "suites", "description"):
        table.add_column(column)
    for e in entries:
        table.add_row(e["name"], e["provider"], ", ".join(e["modalities"]), str(e["rows"] or "-"), e["metric"],
                      ", ".join(e["suites"]) or "-", e["description"])
    table_console().print(table)


def _require_store(tracking_uri: str) -> None:
    """A missing local SQLite store means nothing was recorded there: say so instead of creating it."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):])
        if not path.exists():
            raise ConfigError(f"no MLflow store at {path}; run `mmbench search` first or pass --tracking-uri")


from mmbench.cli.evaluate import register as _register_evaluation  # defined after `app`: it adds commands to it

_register_evaluation(app)  # evaluate, reproduce, predict, report


def main() -> None:
    """Console-script entry point: user errors print one line and exit 2."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer returns exit codes (130 after Ctrl-C) instead of raising
            raise SystemExit(code)
    except MmbenchError as error:
        typer.echo(f"error: {error}", err=True)
        raise SystemExit(2) from None
    except Exception as error:  # usage errors arrive here in non-standalone mode (typer >= 0.24 vendors click)
        if isinstance(error, typer.TyperException):  # typer._click.ClickException and its usage errors
            show = getattr(error, "show", None)
            if show is not None:
                show()
            else:
                typer.echo(f"error: {error.format_message()}", err=True)
            raise SystemExit(error.exit_code) from None
        if isinstance(error, typer.Abort):
            typer.echo("aborted", err=True)
            raise SystemExit(130) from None
        raise
    except KeyboardInterrupt as error:  # mmbench.infra.signals.StopRequested carries its message and exit code
        typer.echo(f"error: {error}" if str(error) else "interrupted", err=True)
        raise SystemExit(getattr(error, "exit_code", 130)) from None


if __name__ == "__main__":
    main()
