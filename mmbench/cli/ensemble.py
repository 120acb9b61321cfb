"""``mmbench ensemble``: build (again) the ensemble of a task's recorded runs, on demand.

The same selection a search runs at its end (:mod:`mmbench.search.ensemble_stage`), over one
study's finished runs (``--study``) or every study of the task; recorded as a new run.
"""

from __future__ import annotations

from typing import Optional

import typer

from mmbench.cli.common import DEFAULT_TRACKING_URI, URI_HELP, open_store
from mmbench.errors import ConfigError


def ensemble(
    task: str = typer.Option(..., "--task", help="The task whose recorded runs are combined."),
    study: Optional[str] = typer.Option(None, "--study", help="Only this study's runs [default: every study of the task]."),
    n_rounds: int = typer.Option(25, "--rounds", help="Rounds of greedy selection (with replacement)."),
    seed: int = typer.Option(0, "--seed", help="Seed that breaks ties between equally good additions."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help=URI_HELP),
) -> None:
    """Ensemble selection (Caruana et al. 2004) over finished runs on validation; scored once on test."""
    from mmbench.search.ensemble import check_single_label
    from mmbench.search.ensemble_stage import build_ensemble, describe_way, ensemble_combination
    from mmbench.tracking.layout import TAG
    from mmbench.tracking.tracker import Tracker

    if n_rounds < 1:
        raise ConfigError(f"--rounds must be at least 1, got {n_rounds}")
    tracker: Tracker = open_store(tracking_uri)
    experiment_id = next(iter(tracker.task_experiments(task)))
    runs = tracker.trial_runs([experiment_id], extra_filter=f"tags.`{TAG}state` = 'COMPLETE'")
    metric = next((r.data.tags.get(f"{TAG}metric") for r in runs if r.data.tags.get(f"{TAG}metric")), None)
    if metric is None:
        raise ConfigError(f"--task {task}: no finished trial to ensemble; run `mmbench search {task}` first")
    check_single_label((r.data.metrics for r in runs), f"--task {task}")
    parent = next((r.data.tags.get("mlflow.parentRunId") for r in runs if study and r.data.tags.get(f"{TAG}study") == study), None)
    result = build_ensemble(tracker, experiment_id, task=task, metric=metric, study=study, parent_run_id=parent,
                            seed=seed, n_rounds=n_rounds)
    if result is None:
        raise ConfigError(f"--task {task}{f' --study {study}' if study else ''}: fewer than two finished runs with stored "
                          "predictions (runs recorded before predictions were stored cannot be ensembled)")
    typer.echo(f"{ensemble_combination(len(result.weights))} (run {result.run_id}) of {result.n_candidates} candidates "
               f"({describe_way(result.way)}): "
               f"val {result.val_score:.4f}, test {result.test_score:.4f}")
    for run_id, weight in sorted(result.weights.items(), key=lambda item: -item[1]):
        typer.echo(f"  {weight:.3f}  {run_id}")


def register(app: typer.Typer) -> None:
    """Add ``ensemble`` to the ``mmbench`` app."""
    app.command()(ensemble)
