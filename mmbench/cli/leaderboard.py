"""``mmbench leaderboard``: the recorded runs ranked per task, as a table or for other tools."""

from __future__ import annotations

import sys
from typing import Any, Optional

import typer

from mmbench.cli.common import DEFAULT_TRACKING_URI, URI_HELP, check_format, require_store
from mmbench.errors import ConfigError


def leaderboard_command(
    task: Optional[str] = typer.Option(None, "--task", help="Only this task."),
    fusion: Optional[str] = typer.Option(None, "--fusion", help="Only combinations with this fusion."),
    top: Optional[int] = typer.Option(None, "--top", help="Only the best K combinations per task."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    tracking_uri: str = typer.Option(DEFAULT_TRACKING_URI, "--tracking-uri", help=URI_HELP),
    all_fingerprints: bool = typer.Option(
        False, "--all-fingerprints", help="Rank runs of every data version together (default: only the data fingerprint of each task's latest run)."),
) -> None:
    """Rank combinations per task by validation metric (test beside it), and across tasks; each task's
    class balance per split, and ≈majority on rows that never beat the majority-class score."""
    from mmbench.cli.console import table_console
    from mmbench.tracking.leaderboard import FORMATS, leaderboard, print_table, render
    from mmbench.tracking.tracker import Tracker

    check_format(fmt, FORMATS)
    if top is not None and top < 1:
        raise ConfigError(f"--top must be at least 1, got {top}")
    require_store(tracking_uri)
    notes: list[str] = []
    balances: dict[str, dict[str, Any]] = {}
    rows = leaderboard(Tracker(tracking_uri), task=task, fusion=fusion, top=top, all_fingerprints=all_fingerprints, notes=notes,
                       balances=balances)
    for note in notes:
        typer.echo(note, err=True)
    if fmt == "table":
        print_table(rows, table_console(), balances)
    else:
        sys.stdout.write(render(rows, fmt, balances))


def register(app: typer.Typer) -> None:
    """Add ``leaderboard`` to the ``mmbench`` app."""
    app.command("leaderboard")(leaderboard_command)
