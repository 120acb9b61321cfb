"""CLI commands of holistic evaluation: ``evaluate``, ``reproduce``, ``predict``, ``report``.

Registered on the main typer app by :func:`register` (called from :mod:`mmbench.cli.app`). Heavy
modules are imported inside each command; user errors are :class:`~mmbench.errors.MmbenchError` (one line, exit code 2).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmbench.cli.common import DEFAULT_TRACKING_URI, URI_HELP, check_format, note, open_store


def evaluate(
    run_id: str = typer.Argument(..., help="A trial run id (see `mmbench leaderboard --format json`)."),
    split: str = typer.Option("test", "--split", help="train, validation, test, or a labelled .csv/.jsonl file."),
    robustness: bool = typer.Option(False, "--robustness", help="Also evaluate with each modality removed and under noise."),
    contributions: bool = typer.Option(False, "--contributions", help="Also measure each modality's contribution (ablation, Shapley)."),
    retrain: bool = typer.Option(True, "--retrain/--no-retrain", help="Retrain a run that has no logged weights."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of the task's data files (or $MMBENCH_DATA)."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help=URI_HELP),
) -> None:
    """Score a recorded run's model; optionally robustness and modality contributions (logged on the run)."""
    from mmbench.tasks.loading import data_root as resolve_root
    from mmbench.runs.evaluation import evaluate_run
    from mmbench.registry import get_registry

    check_format(fmt, ("table", "json"))
    result = evaluate_run(open_store(tracking_uri), run_id, get_registry(), split=split, robustness=robustness,
                          contributions=contributions, data_root=resolve_root(data_root), retrain=retrain, on_note=note)
    if fmt == "json":
        payload = {"run_id": run_id, "split": result.split, "n_rows": result.n_rows, "metrics": result.metrics,
                   "robustness": result.robustness.to_dict() if result.robustness else None,
                   "contributions": result.contributions.to_dict() if result.contributions else None}
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"run {run_id} on {result.split} ({result.n_rows} rows)")
    for name, value in result.metrics.items():
        typer.echo(f"  {name:<10} {value:.4f}")
    if result.robustness:
        r = result.robustness
        typer.echo(f"robustness ({r.metric}): clean {r.clean:.4f}, every modality removed {r.floor:.4f}")
        for modality, value in r.missing.items():
            typer.echo(f"  without {modality:<12} {value:.4f}")
        for name in r.curves:
            typer.echo(f"  noise on {name:<11} relative {r.relative[name]:.3f}  effective {r.effective[name]:.3f}  "
                       f"curve {' '.join(f'{v:.3f}' for v in r.curves[name])}")
    if result.contributions:
        c = result.contributions
        typer.echo(f"contributions ({c.metric}): all {c.full:.4f}, none {c.empty:.4f}")
        for modality in c.ablation:
            shapley = "-" if c.shapley is None else f"{c.shapley[modality]:+.4f}"
            typer.echo(f"  {modality:<12} shapley {shapley}  share {c.share[modality]:6.1f} %  ablation {c.ablation[modality]:+.4f}")


def reproduce(
    run_id: str = typer.Argument(..., help="A trial run id."),
    device: str = typer.Option("cpu", "--device", help="cpu (bit-identical) or auto/cuda."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of the task's data files (or $MMBENCH_DATA)."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help=URI_HELP),
) -> None:
    """Rebuild a run's exact configuration, retrain it with its seed and compare the metrics (exit 1 if they differ)."""
    from mmbench.tasks.loading import data_root as resolve_root
    from mmbench.registry import get_registry
    from mmbench.runs.reproduce import reproduce as rerun

    outcome = rerun(open_store(tracking_uri), run_id, get_registry(), data_root=resolve_root(data_root), device=device)
    typer.echo(f"run {run_id}: {outcome.combination} (seed {outcome.seed})")
    if not outcome.fingerprint_matches:
        note("the task's data changed since the run (fingerprint differs); metrics cannot match")
    for name in sorted(outcome.reproduced):
        recorded = outcome.recorded.get(name)
        mark = "" if recorded is None else ("=" if outcome.differences[name] <= 1e-9 else "≠")
        typer.echo(f"  {name:<16} recorded {'-' if recorded is None else f'{recorded:.6f}':>10}  reproduced {outcome.reproduced[name]:.6f} {mark}")
    typer.echo("identical" if outcome.identical else "DIFFERENT")
    if not outcome.identical:
        raise typer.Exit(1)


def predict(
    run_id: str = typer.Argument(..., help="A trial run id (the search's best trial has logged weights)."),
    data_file: Path = typer.Argument(..., help="New rows: a .csv or .jsonl file with the task's modality columns."),
    output: Path = typer.Option(Path("predictions.csv"), "--output", "-o", help="Where to write predictions (.csv or .jsonl)."),
    retrain: bool = typer.Option(True, "--retrain/--no-retrain", help="Retrain a run that has no logged weights."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of the task's data files (or $MMBENCH_DATA)."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help=URI_HELP),
) -> None:
    """Predict new rows with a recorded model; writes class, its probability and every class's probability."""
    from mmbench.tasks.loading import data_root as resolve_root
    from mmbench.runs.predict import predict_file
    from mmbench.registry import get_registry

    path, n_rows = predict_file(open_store(tracking_uri), run_id, data_file, output, get_registry(),
                                data_root=resolve_root(data_root), retrain=retrain, on_retrain=note, on_note=note)
    typer.echo(f"wrote {n_rows} predictions to {path}")


def report(
    task: str = typer.Option(..., "--task", help="The task to report on."),
    output: Path | None = typer.Option(None, "--output", "-o", help="HTML file [default: report-<task>.html]."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help=URI_HELP),
) -> None:
    """Write a self-contained HTML report (leaderboard, robustness, efficiency, contributions); also logged to MLflow."""
    from mmbench.runs.evaluation.report import write_report

    path = write_report(open_store(tracking_uri), task, output)
    typer.echo(f"wrote {path}")


def register(app: typer.Typer) -> None:
    """Add the evaluation commands to the ``mmbench`` app."""
    app.command()(evaluate)
    app.command()(reproduce)
    app.command()(predict)
    app.command()(report)
