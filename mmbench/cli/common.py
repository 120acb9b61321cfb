"""Helpers every command group shares: option checks, notes, opening a recorded tracking store.

Below the command modules and imported by them, never the other way round (no cycle with
:mod:`mmbench.cli.app`, which only assembles the groups).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from mmbench.errors import ConfigError
from mmbench.tracking.layout import DEFAULT_TRACKING_URI

if TYPE_CHECKING:
    from mmbench.tracking.tracker import Tracker

#: ``--format`` values of the listing commands.
FORMAT_TABLE_JSON = ("table", "json")
URI_HELP = "MLflow tracking URI."

__all__ = ["DEFAULT_TRACKING_URI", "FORMAT_TABLE_JSON", "URI_HELP", "check_format", "note", "open_store",
           "require_store"]


def check_format(value: str, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``.

    Raises:
        ConfigError: naming ``--format`` and the valid values.
    """
    if value not in allowed:
        raise ConfigError(f"--format must be one of {', '.join(allowed)}, got '{value}'")
    return value


def note(text: str) -> None:
    """A one-line note on stderr (retraining, changed data), beside the command's output."""
    typer.echo(f"note: {text}", err=True)


def require_store(tracking_uri: str) -> None:
    """A missing local SQLite store means nothing was recorded there: say so instead of creating it."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri[len("sqlite:///"):])
        if not path.exists():
            raise ConfigError(f"no MLflow store at {path}; run `mmbench search` first or pass --tracking-uri")


def open_store(tracking_uri: str) -> Tracker:
    """The tracker of a store that must already hold runs (see :func:`require_store`)."""
    from mmbench.tracking.tracker import Tracker

    require_store(tracking_uri)
    return Tracker(tracking_uri)
