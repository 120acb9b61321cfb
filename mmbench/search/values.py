"""Checks of single numbers from flags, task files and provider options, with one message style.

Values arrive untyped (YAML, ``--set``, typer): each check refuses booleans where a number is
meant, non-finite numbers and out-of-range values with a :class:`~mmbench.errors.ConfigError`
that names where the value came from (``label``), what was given and what is valid.

Example:
    >>> integer(3, "--n-trials", minimum=1)
    3
    >>> integer("abc", "task.yaml: search.n_trials", minimum=1)
    Traceback (most recent call last):
    ...
    mmbench.errors.ConfigError: task.yaml: search.n_trials must be an integer >= 1, got 'abc'
"""

from __future__ import annotations

import math
from typing import Any

from mmbench.errors import ConfigError

#: Seeds stay below 2**31, so ``seed + trial number`` still fits every library's seed (NumPy's legacy one: < 2**32).
MAX_SEED = 2**31 - 1
#: Sizes in GB beyond this (a petabyte) are surely a typo, and ``1e308`` overflows once turned into bytes.
MAX_GIGABYTES = 1_000_000


def integer(value: Any, label: str, *, minimum: int | None = None, maximum: int | None = None) -> int:
    """``value`` as an int within ``[minimum, maximum]``; ``1.0`` and ``True`` are refused."""
    if isinstance(value, bool) or not isinstance(value, int) or not _within(value, minimum, maximum):
        raise ConfigError(f"{label} must be an integer{_range(minimum, maximum)}, got {value!r}")
    return value


def number(value: Any, label: str, *, minimum: float | None = None, maximum: float | None = None,
           positive: bool = False) -> float:
    """``value`` as a finite float within ``[minimum, maximum]`` (``> 0`` when ``positive``)."""
    ok = (not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
          and _within(value, minimum, maximum) and (not positive or value > 0))
    if not ok:
        bounds = " > 0" + _range(None, maximum) if positive else _range(minimum, maximum)
        raise ConfigError(f"{label} must be a finite number{bounds}, got {value!r}")
    return float(value)


def seed(value: Any, label: str) -> int:
    """A seed: an integer in ``0..MAX_SEED``."""
    return integer(value, label, minimum=0, maximum=MAX_SEED)


def gigabytes(value: Any, label: str) -> float:
    """A size in GB: finite, ``0 <= value <= MAX_GIGABYTES``."""
    return number(value, label, minimum=0, maximum=MAX_GIGABYTES)


def names(value: Any, label: str) -> list[str]:
    """A non-empty list of non-empty strings (a single string is one name)."""
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ConfigError(f"{label} must be a list of names, got {value!r}")
    return value


def _within(value: float, minimum: float | None, maximum: float | None) -> bool:
    return (minimum is None or value >= minimum) and (maximum is None or value <= maximum)


def _range(minimum: float | None, maximum: float | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in {_show(minimum)}..{_show(maximum)}"
    if minimum is not None:
        return f" >= {_show(minimum)}"
    return f" <= {_show(maximum)}" if maximum is not None else ""


def _show(bound: float) -> str:
    return str(bound) if isinstance(bound, int) else f"{bound:g}"
