"""One set of rules for search settings, used for CLI flags and a task file's ``search:`` block alike.

The same key gets the same check wherever it comes from, only the label differs
(``--n-trials`` or ``task.yaml: search.n_trials``), and the checks run before any data loads.
Training values fixed with ``--set train.NAME=VALUE`` (or ``search.fixed``) are checked here too:
a zero learning rate or zero epochs would rank an untrained model as COMPLETE.

Example:
    >>> check_search_block({"n_trials": 3, "fusions": ["early"]}, "t.yaml: search")["n_trials"]
    3
    >>> check_search_value("timeout", 0, "--timeout")
    Traceback (most recent call last):
    ...
    mmbench.errors.ConfigError: --timeout must be a finite number > 0, got 0
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from mmbench.search import values
from mmbench.errors import ConfigError


def _positive_int(value: Any, label: str) -> int:
    return values.integer(value, label, minimum=1)


def _count(value: Any, label: str) -> int:
    return values.integer(value, label, minimum=0)


def _seconds(value: Any, label: str) -> float:
    return values.number(value, label, positive=True)


def _non_negative(value: Any, label: str) -> float:
    return values.number(value, label, minimum=0)


def _batch_sizes(value: Any, label: str) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{label} must be a list of batch sizes, got {value!r}")
    return [_positive_int(v, f"{label}[{i}]") for i, v in enumerate(value)]


def _encoders(value: Any, label: str) -> dict[str, list[str]]:
    if not isinstance(value, dict):
        raise ConfigError(f"{label} must map modality names to encoder names, got {value!r}")
    for modality in value:
        if not isinstance(modality, str):
            raise ConfigError(f"{label} must map modality names to encoder names, got key {modality!r}")
    return {modality: values.names(names, f"{label}.{modality}") for modality, names in value.items()}


def _fixed(value: Any, label: str) -> dict[str, Any]:
    if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
        raise ConfigError(f"{label} must map parameter names to values, got {value!r}")
    for name, fixed in value.items():
        check_fixed_value(name, fixed, f"{label}.{name}")
    return value


#: ``search:`` key -> check(value, label).
SEARCH_RULES: dict[str, Callable[[Any, str], Any]] = {
    "n_trials": _positive_int,
    "timeout": _seconds,
    "time_limit": _seconds,
    "max_epochs": _positive_int,
    "patience": _count,
    "fusions": values.names,
    "encoders": _encoders,
    "fixed": _fixed,
    "batch_sizes": _batch_sizes,
}

#: ``train.NAME`` fixed values -> check(value, label); other names are checked against their space.
TRAIN_RULES: dict[str, Callable[[Any, str], Any]] = {
    "train.lr": _seconds,  # any finite number > 0
    "train.weight_decay": _non_negative,
    "train.batch_size": _positive_int,
    "train.max_epochs": _positive_int,
    "train.patience": _count,
    "train.grad_clip": _seconds,
    "train.aux_weight": _non_negative,
}


def check_search_value(key: str, value: Any, label: str) -> Any:
    """Check one search setting (``value`` ``None`` means unset and passes)."""
    if value is None or key not in SEARCH_RULES:
        return value
    return SEARCH_RULES[key](value, label)


def check_fixed_value(name: str, value: Any, label: str) -> Any:
    """Check one fixed parameter value whose name has a rule (``train.lr``, ...)."""
    rule = TRAIN_RULES.get(name)
    return value if rule is None else rule(value, label)


def check_search_block(block: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Check every key of a task file's ``search:`` block; ``where`` names the file and block."""
    return {key: check_search_value(key, value, f"{where}.{key}") for key, value in block.items()}
