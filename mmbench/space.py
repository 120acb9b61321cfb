"""Declarative hyperparameters, turned into Optuna ``suggest_*`` calls.

Components declare their search space on the class as a mapping of name to :class:`Int`,
:class:`Float` or :class:`Categorical`. Declaring (rather than calling Optuna directly) lets
the suite list a component's space without building it, prefix names so conditional spaces
never collide (``fusion.tfn.rank``), fix values from the command line, and sample points for
conformance checks without an Optuna study.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Union

from mmbench.errors import ConfigError

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Int:
    """An integer hyperparameter in ``[low, high]``.

    Example:
        >>> Int(8, 64, log=True).describe()
        'int[8, 64] log'
    """

    low: int
    high: int
    log: bool = False
    step: int = 1

    def __post_init__(self) -> None:
        if not (isinstance(self.low, int) and isinstance(self.high, int)) or self.low > self.high:
            raise ConfigError(f"Int needs integers low <= high, got low={self.low!r}, high={self.high!r}")
        if self.log and self.low < 1:
            raise ConfigError(f"Int(log=True) needs low >= 1, got {self.low}")
        if self.step < 1 or (self.log and self.step != 1):
            raise ConfigError(f"Int step must be >= 1 (and 1 with log=True), got {self.step}")

    def suggest(self, trial: optuna.Trial, name: str) -> int:
        return trial.suggest_int(name, self.low, self.high, log=self.log, step=self.step)

    def sample(self, rng: random.Random) -> int:
        if self.log:
            return int(round(math.exp(rng.uniform(math.log(self.low), math.log(self.high)))))
        return rng.randrange(self.low, self.high + 1, self.step)

    def contains(self, value: Any) -> bool:
        return isinstance(value, int) and not isinstance(value, bool) and self.low <= value <= self.high

    def coerce(self, text: str) -> int:
        return int(text)

    def describe(self) -> str:
        return f"int[{self.low}, {self.high}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Float:
    """A real hyperparameter in ``[low, high]``.

    Example:
        >>> Float(1e-4, 1e-2, log=True).describe()
        'float[0.0001, 0.01] log'
    """

    low: float
    high: float
    log: bool = False

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ConfigError(f"Float needs low <= high, got low={self.low!r}, high={self.high!r}")
        if self.log and self.low <= 0:
            raise ConfigError(f"Float(log=True) needs low > 0, got {self.low}")

    def suggest(self, trial: optuna.Trial, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def sample(self, rng: random.Random) -> float:
        if self.log:
            return math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        return rng.uniform(self.low, self.high)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and self.low <= value <= self.high

    def coerce(self, text: str) -> float:
        return float(text)

    def describe(self) -> str:
        return f"float[{self.low:g}, {self.high:g}]" + (" log" if self.log else "")


@dataclass(frozen=True)
class Categorical:
    """A choice among a fixed list of values (str, int, float, bool or None).

    Example:
        >>> Categorical(["mean", "max"]).describe()
        "{'mean', 'max'}"
    """

    choices: tuple[Any, ...]

    def __init__(self, choices: Sequence[Any]) -> None:
        values = tuple(choices)
        if not values:
            raise ConfigError("Categorical needs at least one choice")
        for value in values:
            if value is not None and not isinstance(value, (str, int, float, bool)):
                raise ConfigError(f"Categorical choices must be str, int, float, bool or None; got {value!r}")
        object.__setattr__(self, "choices", values)

    def suggest(self, trial: optuna.Trial, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.choices))

    def sample(self, rng: random.Random) -> Any:
        return rng.choice(self.choices)

    def contains(self, value: Any) -> bool:
        return any(value == choice and type(value) is type(choice) for choice in self.choices)

    def coerce(self, text: str) -> Any:
        for choice in self.choices:
            if str(choice).lower() == text.lower():
                return choice
        raise ValueError(f"{text!r} is not one of {', '.join(map(str, self.choices))}")

    def describe(self) -> str:
        return "{" + ", ".join(repr(c) for c in self.choices) + "}"


Param = Union[Int, Float, Categorical]
Space = Mapping[str, Param]


def validate_space(space: Any, owner: str) -> None:
    """Raise :class:`ConfigError` unless ``space`` maps identifier names to parameters.

    Args:
        space: the declared space (normally a component's ``space`` class attribute).
        owner: the component name, for the message.
    """
    if not isinstance(space, Mapping):
        raise ConfigError(f"{owner}: 'space' must be a dict of name -> Int/Float/Categorical, got {type(space).__name__}")
    for name, param in space.items():
        if not isinstance(name, str) or not name.isidentifier():
            raise ConfigError(f"{owner}: hyperparameter name {name!r} must be a Python identifier")
        if not isinstance(param, (Int, Float, Categorical)):
            raise ConfigError(f"{owner}: hyperparameter '{name}' must be Int, Float or Categorical, got {param!r}")


def suggest_space(
    trial: optuna.Trial, space: Space, prefix: str, fixed: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Suggest every parameter of ``space`` under ``prefix.name``; fixed values are not searched.

    Args:
        trial: the Optuna trial.
        space: name -> parameter.
        prefix: namespace such as ``"fusion.tfn"``; the Optuna name is ``f"{prefix}.{name}"``.
        fixed: full names (``"fusion.tfn.rank"``) whose value is given instead of searched.

    Returns:
        The short name -> value mapping, ready to pass to the component's constructor.
    """
    fixed = fixed or {}
    values: dict[str, Any] = {}
    for name, param in space.items():
        full = f"{prefix}.{name}"
        values[name] = fixed[full] if full in fixed else param.suggest(trial, full)
    return values


def sample_space(space: Space, rng: random.Random) -> dict[str, Any]:
    """Draw one point of ``space`` without Optuna (used by the conformance kit)."""
    return {name: param.sample(rng) for name, param in space.items()}


def grid_values(param: Param) -> list[Any]:
    """Representative values for grid search: every choice, or low / middle / high of a range."""
    if isinstance(param, Categorical):
        return list(param.choices)
    middle = math.sqrt(param.low * param.high) if param.log else (param.low + param.high) / 2
    if isinstance(param, Int):
        middle = int(round(middle))
    return list(dict.fromkeys([param.low, middle, param.high]))
