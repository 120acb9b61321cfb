"""``mmbench inspect TASK``: show what the data becomes before spending compute on it."""

from __future__ import annotations

from pathlib import Path

import typer


def inspect(
    task: str = typer.Argument(..., help="A task name or a task file."),
    data_root: Path | None = typer.Option(None, "--data-root", help="Folder of the task's data files (or $MMBENCH_DATA)."),
) -> None:
    """Print each column's kind and why, the modalities, split sizes, class counts per split, groups and duplicates."""
    from mmbench.data.inspection import summary_lines
    from mmbench.registry import get_registry
    from mmbench.tasks.files import resolve_task
    from mmbench.tasks.loading import data_root as resolve_root
    from mmbench.tasks.loading import load_task_data

    registry = get_registry()
    resolved = resolve_task(task, registry)
    data = load_task_data(resolved, registry, root=resolve_root(data_root))
    typer.echo(f"task {resolved.name}: {data.fingerprint}")
    for line in summary_lines(data, group_column=resolved.split.get("group_column")):
        typer.echo(line)


def register(app: typer.Typer) -> None:
    """Add ``inspect`` to the ``mmbench`` app."""
    app.command()(inspect)
