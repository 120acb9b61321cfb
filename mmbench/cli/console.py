"""The rich console that tables are printed on."""

from __future__ import annotations

from typing import Any

#: Width of tables written to a pipe or a CI log (rich would wrap them at 80 columns).
PIPE_WIDTH = 160


def table_console() -> Any:
    """A console for stdout: the terminal's width, or :data:`PIPE_WIDTH` when stdout is not a terminal."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=PIPE_WIDTH)
