"""Samplers and pruners of ``mmbench search``, and the grid over a conditional space.

The space is conditional (only the chosen fusion's and encoders' parameters exist in a trial),
which Optuna's own :class:`~optuna.samplers.GridSampler` cannot express: it takes one flat
product, so a grid over ``fusion.early.*`` x ``fusion.tfn.*`` would repeat every early-fusion
point once per TFN value. Instead the grid is enumerated by running the space's own
``suggest`` against a recording trial, depth first over every decision: whatever the space
asks (today's parameters or a plugin's tomorrow) is what the grid covers, each point once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import optuna

from mmbench.errors import ConfigError, unknown_name_message
from mmbench.space import Categorical, Float, Int, Param, grid_values

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution
    from optuna.trial import FrozenTrial

SAMPLERS = ("tpe", "random", "gp", "cmaes", "grid")
PRUNERS = ("hyperband", "median", "none")
#: A grid larger than this is refused: grid search is for small spaces.
MAX_GRID_POINTS = 1000

Suggest = Callable[[Any], Any]
_GRID_ATTR = "mmbench.grid_id"


class _RecordingTrial:
    """Stands in for an Optuna trial: answers each ``suggest_*`` from a path of choice indices.

    Decisions past the end of ``path`` take their first value; ``branches`` records how many
    values each decision had, which is all a depth-first walk needs.
    """

    def __init__(self, path: Sequence[int], values_of: Callable[[Param], list[Any]]) -> None:
        self.path, self.values_of = list(path), values_of
        self.params: dict[str, Any] = {}
        self.branches: list[tuple[str, list[Any]]] = []
        self.number = 0

    def _decide(self, name: str, param: Param) -> Any:
        values = self.values_of(param)
        index = self.path[len(self.branches)] if len(self.branches) < len(self.path) else 0
        self.branches.append((name, values))
        self.params[name] = values[index]
        return values[index]

    def suggest_categorical(self, name: str, choices: Sequence[Any]) -> Any:
        return self._decide(name, Categorical(choices))

    def suggest_int(self, name: str, low: int, high: int, *, step: int = 1, log: bool = False) -> int:
        return self._decide(name, Int(low, high, log=log, step=step))

    def suggest_float(self, name: str, low: float, high: float, *, step: float | None = None, log: bool = False) -> float:
        return self._decide(name, Float(low, high, log=log))

    def set_user_attr(self, key: str, value: Any) -> None:
        pass


def _walk(suggest: Suggest, values_of: Callable[[Param], list[Any]]) -> Iterator[_RecordingTrial]:
    """Depth-first over every decision: yields one recorded trial per point of the space."""
    pending: list[list[int]] = [[]]
    while pending:
        path = pending.pop()
        trial = _RecordingTrial(path, values_of)
        suggest(trial)
        yield trial
        indices = [values.index(trial.params[name]) for name, values in trial.branches]
        for depth in range(len(path), len(trial.branches)):
            pending.extend(indices[:depth] + [k] for k in range(1, len(trial.branches[depth][1])))


def walk_space(suggest: Suggest, values_of: Callable[[Param], list[Any]], *, limit: int) -> list[dict[str, Any]]:
    """Every point of a conditional space, as parameter name -> value.

    Args:
        suggest: calls ``suggest_*`` on the trial it is given (e.g. ``SearchSpace.suggest``).
        values_of: the values a parameter takes in the walk (:func:`grid_values` for a grid).
        limit: stop with :class:`ConfigError` after this many points.

    Example:
        >>> def suggest(trial):
        ...     if trial.suggest_categorical("f", ["a", "b"]) == "a":
        ...         trial.suggest_int("f.a.n", 1, 2)
        >>> walk_space(suggest, grid_values, limit=10)
        [{'f': 'a', 'f.a.n': 1}, {'f': 'a', 'f.a.n': 2}, {'f': 'b'}]
    """
    points: list[dict[str, Any]] = []
    for trial in _walk(suggest, values_of):
        points.append(trial.params)
        if len(points) > limit:
            raise ConfigError(
                f"--sampler grid: the space has more than {limit} points; shrink it with --fusions, "
                "--encoders or --set (e.g. --set train.lr=1e-3), or use --sampler tpe"
            )
    return points


def categorical_decisions(suggest: Suggest) -> dict[str, list[Any]]:
    """Every real choice (two or more values) the space can make, over all its branches."""

    def values_of(param: Param) -> list[Any]:
        return list(param.choices) if isinstance(param, Categorical) else [param.low]

    found: dict[str, list[Any]] = {}
    for trial in _walk(suggest, values_of):
        found.update({name: values for name, values in trial.branches if len(values) > 1 and name not in found})
    return found


class ConditionalGridSampler(optuna.samplers.BaseSampler):
    """Runs each point of a conditional grid once, across resumes and parallel workers.

    Which point a trial runs is stored on the trial (system attribute), so a resumed study
    continues with the points not yet taken; the study stops when every point is taken.
    """

    def __init__(self, points: list[dict[str, Any]]) -> None:
        self.points = points
        self._fallback = optuna.samplers.RandomSampler(seed=0)

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if _GRID_ATTR in trial.system_attrs:
            return
        # an interrupted trial's point is handed out again (see mmbench.search.resume)
        taken = {t.system_attrs.get(_GRID_ATTR) for t in study.get_trials(deepcopy=False) if not t.user_attrs.get("mmbench.interrupted")}
        free = [i for i in range(len(self.points)) if i not in taken]
        if not free:
            study.stop()
            free = [len(self.points) - 1]
        study._storage.set_trial_system_attr(trial._trial_id, _GRID_ATTR, free[0])
        if len(free) == 1:
            study.stop()

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, distribution: BaseDistribution) -> Any:
        point = self.points[trial.system_attrs[_GRID_ATTR]]
        if param_name in point:
            return point[param_name]
        return self._fallback.sample_independent(study, trial, param_name, distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: Any, values: Sequence[float] | None) -> None:
        pass

    def reseed_rng(self) -> None:
        pass


def make_sampler(name: str, *, seed: int, suggest: Suggest, n_objectives: int = 1, concurrent: bool = False) -> optuna.samplers.BaseSampler:
    """The sampler called ``name`` (one of :data:`SAMPLERS`), seeded.

    Args:
        name: ``tpe`` (multivariate, grouped for the conditional space), ``random``, ``gp``,
            ``cmaes`` (numeric spaces only) or ``grid`` (small spaces only).
        seed: the sampler's seed; with sequential trials it makes the search reproducible.
        suggest: draws one configuration on a trial (used to inspect the space).
        n_objectives: 1, or 2 for a multi-objective search.
        concurrent: trials of this process run at the same time (``--n-jobs``, ``--batch-trials``): TPE
            then counts those still running as bad results (constant liar), so they spread out.

    Raises:
        ConfigError: an unknown sampler, or one the space or objectives do not allow.
    """
    if name not in SAMPLERS:
        raise ConfigError(f"--sampler: {unknown_name_message('sampler', name, SAMPLERS)}")
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=5, independent_sampler=optuna.samplers.RandomSampler(seed=seed))
    if name == "cmaes":
        return _cmaes(seed, suggest, n_objectives)
    if name == "grid":
        return ConditionalGridSampler(walk_space(suggest, grid_values, limit=MAX_GRID_POINTS))
    # only when concurrent: reading the running trials costs a sequential search about 4 ms a trial for nothing
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, group=True, n_startup_trials=5, constant_liar=concurrent)


def _cmaes(seed: int, suggest: Suggest, n_objectives: int) -> optuna.samplers.BaseSampler:
    if n_objectives > 1:
        raise ConfigError("--sampler cmaes optimises one objective; use tpe, gp or random with --objectives")
    choices = categorical_decisions(suggest)
    if choices:
        listed = "; ".join(f"{name} {{{', '.join(map(str, values))}}}" for name, values in sorted(choices.items()))
        raise ConfigError(
            f"--sampler cmaes needs a numeric-only space, but these are choices: {listed}; "
            "fix each with --set NAME=VALUE (or one value in --fusions/--encoders), or use --sampler tpe"
        )
    try:
        import cmaes  # noqa: F401
    except ImportError:
        raise ConfigError("--sampler cmaes needs the 'cmaes' package: pip install 'mmbench[cmaes]'") from None
    return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=1)


def make_pruner(name: str, *, n_objectives: int = 1) -> optuna.pruners.BasePruner:
    """The pruner called ``name`` (one of :data:`PRUNERS`); multi-objective searches never prune.

    Hyperband (the default) races brackets of trials on per-epoch validation reports; median
    stops a trial whose report falls below the median of earlier trials at the same epoch.
    """
    if name not in PRUNERS:
        raise ConfigError(f"--pruner: {unknown_name_message('pruner', name, PRUNERS)}")
    if name == "none" or n_objectives > 1:
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)
