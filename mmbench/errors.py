"""One hierarchy of user-facing errors.

Everything a user can cause (a bad task file, an unknown plugin name, malformed data) raises a
subclass of :class:`MmbenchError`; the CLI prints its message on one line and exits with code 2.
Programming errors (bugs) are left as ordinary exceptions so they keep their traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class MmbenchError(Exception):
    """Base class of every error caused by user input rather than by a bug.

    Its message is always one line: user text embedded in it (a YAML key ``"\\n\\n"``, a task
    name typed with a tab) has its control characters written as escapes (:func:`printable`).
    """

    def __str__(self) -> str:
        return printable(super().__str__())


def printable(text: str) -> str:
    """``text`` with newlines, tabs and other non-printable characters written as Python escapes.

    Example:
        >>> printable("unknown key '\\n\\n'")
        "unknown key '\\\\n\\\\n'"
    """
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def one_line(error: BaseException, limit: int | None = None) -> str:
    """An exception's message on one line (whitespace collapsed), cut to ``limit`` characters;
    the exception's type when it has no message. For error messages that quote another error.

    Example:
        >>> one_line(ValueError("bad\\n  value"))
        'bad value'
        >>> one_line(KeyError(), 10)
        'KeyError'
    """
    text = " ".join(str(error).split())
    return text[:limit] if text else type(error).__name__


class PluginError(MmbenchError):
    """A plugin could not be loaded or registered.

    Attributes:
        plugin: the name of the offending plugin (entry point or registration name).
    """

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class PluginLoadError(PluginError):
    """An entry point of the ``mmbench`` group failed to import or to register."""


class DuplicateComponentError(PluginError):
    """Two plugins registered a component under the same name."""


class InvalidComponentError(PluginError):
    """A plugin returned something that is not a valid component class."""


class UnknownComponentError(MmbenchError):
    """A name was asked for that no loaded plugin provides."""


class ConfigError(MmbenchError):
    """A task file, CLI option or search setting is invalid."""


class DataError(MmbenchError):
    """Data is missing, unreadable or inconsistent with its schema."""


class MediaError(Exception):
    """A media cell or file could not be read; the message is the reason, callers add the column and row.

    Not an :class:`MmbenchError`: the bad-row check turns it into a :class:`DataError` naming the
    row (or skips the row), and decoders turn it into one naming the column.
    """


class TrialError(MmbenchError):
    """A trial could not produce a usable result (NaN loss, bad plugin output)."""


class TrackingError(MmbenchError):
    """A run, experiment or tracking store could not be found or read."""


def unknown_name_message(kind: str, given: str, available: Iterable[str]) -> str:
    """Build ``unknown <kind> 'x'; available: a, b (did you mean 'y'?)``.

    Args:
        kind: what was looked up, e.g. ``"fusion"``.
        given: the name the user typed.
        available: the valid names.

    Returns:
        A one-line message that lists the valid names and the closest match, if any.

    Example:
        >>> unknown_name_message("fusion", "tnf", ["early", "late", "tfn"])
        "unknown fusion 'tnf'; available: early, late, tfn (did you mean 'tfn'?)"
    """
    names = sorted(set(available))  # a modality named after its kind is listed once
    message = f"unknown {kind} '{given}'; available: {', '.join(names) if names else '(none)'}"
    close = difflib.get_close_matches(given, names, n=1, cutoff=0.5)
    if close:
        message += f" (did you mean '{close[0]}'?)"
    return message
