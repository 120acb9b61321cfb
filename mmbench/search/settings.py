"""What ``mmbench search`` was asked to do: small frozen option groups, one per concern.

CLI flags override the task file's ``search:`` block. Every group validates itself when it is
built, so a bad value fails before any data loads, and a group never changes type afterwards
(``objectives`` is parsed once, into a tuple).

Example:
    >>> settings = SearchSettings.of("synth-mixed", n_trials=3, objectives="metric,latency")
    >>> settings.budget.n_trials, settings.space.objectives
    (3, ('metric', 'latency'))
    >>> settings.replace(seed=4).seed
    4
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmbench.search import values
from mmbench.errors import ConfigError, unknown_name_message
from mmbench.infra.devices import check_concurrency
from mmbench.search.attrs import parse_objectives
from mmbench.search.presets import check_preset_name
from mmbench.search.samplers import PRUNERS, SAMPLERS
from mmbench.search.validate import check_search_value
from mmbench.tracking.layout import DEFAULT_STORAGE, DEFAULT_TRACKING_URI

DEFAULT_N_TRIALS = 10
DEFAULT_MAX_EPOCHS = 10
DEFAULT_PATIENCE = 3
#: A day: a longer heartbeat would never notice a dead worker (and overflows timers near 1e12 s).
MAX_HEARTBEAT = 86_400


@dataclass(frozen=True)
class BudgetOptions:
    """How much to spend.

    Attributes:
        n_trials: target number of finished trials in the study (resume counts earlier ones).
        timeout: stop *starting* trials after this many seconds (the soft form of ``time_limit``).
        max_epochs: epochs per trial (default: the preset's, else the task's).
        time_limit: hard wall-clock seconds for the whole search (data, trials, later stages; a running
            trial stops at its stage's deadline, see :mod:`mmbench.search.budget`); the task file's
            ``n_trials`` then no longer ends the search.
        preset: ``fast``, ``medium``, ``best`` or ``none`` (default: ``medium`` on real-data tasks; see
            :mod:`mmbench.search.presets`).
    """

    n_trials: int | None = None
    timeout: float | None = None
    max_epochs: int | None = None
    time_limit: float | None = None
    preset: str | None = None

    def __post_init__(self) -> None:
        for key in ("n_trials", "timeout", "max_epochs", "time_limit"):  # the task file's rules (search.validate)
            check_search_value(key, getattr(self, key), "--" + key.replace("_", "-"))
        check_preset_name(self.preset)


@dataclass(frozen=True)
class SpaceOptions:
    """What is searched, and how.

    Attributes:
        fusions: allowed fusions (default: the task's, else all).
        encoders: modality -> allowed encoders.
        fixed: parameter -> value not searched.
        sampler: one of :data:`~mmbench.search.samplers.SAMPLERS`.
        pruner: one of :data:`~mmbench.search.samplers.PRUNERS`.
        objectives: ``("metric",)`` or ``("metric", "latency")`` / ``("metric", "params")`` (Pareto search).
    """

    fusions: Sequence[str] | None = None
    encoders: Mapping[str, Sequence[str]] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    pruner: str = "hyperband"
    objectives: tuple[str, ...] = ("metric",)

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler: {unknown_name_message('sampler', self.sampler, SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner: {unknown_name_message('pruner', self.pruner, PRUNERS)}")
        if not isinstance(self.objectives, tuple):
            raise ConfigError("objectives must be parsed with parse_objectives() (a tuple), not given as text")


@dataclass(frozen=True)
class StoreOptions:
    """Where the study and its runs are kept.

    Attributes:
        study: the Optuna study name (default: the task name).
        storage: Optuna storage URL.
        tracking_uri: MLflow tracking URI.
        heartbeat: seconds between heartbeats of running trials (database storages; 0 = off,
            default :data:`mmbench.search.storage.DEFAULT_HEARTBEAT`): a worker silent for twice that is
            presumed dead, its trial failed and queued again.
    """

    study: str | None = None
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    heartbeat: int | None = None

    def __post_init__(self) -> None:
        if self.heartbeat is not None:
            values.integer(self.heartbeat, "--heartbeat", minimum=0, maximum=MAX_HEARTBEAT)
        for flag, url in (("--storage", self.storage), ("--tracking-uri", self.tracking_uri)):
            if _in_memory_sqlite(url):  # every connection would see its own empty database
                raise ConfigError(f"{flag} {url!r} names no file (an in-memory SQLite database keeps nothing); "
                                  "give a file, e.g. sqlite:///optuna.db")


def _in_memory_sqlite(url: str) -> bool:
    """``sqlite://``, ``sqlite:///`` and ``sqlite:///:memory:`` (SQLAlchemy's in-memory forms)."""
    return url.startswith("sqlite:") and url.split("?")[0] in ("sqlite:", "sqlite://", "sqlite:///", "sqlite:///:memory:")


@dataclass(frozen=True)
class ComputeOptions:
    """Where and how trials run.

    Attributes:
        device: ``auto``, ``cpu``, ``cuda``.
        n_jobs: trials run in parallel threads of this process (results then depend on timing).
        trials_per_gpu: concurrent trials per GPU (small models leave a GPU idle); on a machine
            with several GPUs, ``device="cuda"`` spreads trials over all of them (:mod:`mmbench.infra.devices`).
        compile: train through ``torch.compile``.
        cache_dir: folder of the frozen-encoder feature cache (default: the user cache folder,
            see :mod:`mmbench.train.features`).
        cache_size_gb: bound of that folder (least recently used entries evicted); 0 turns
            the feature cache off (frozen encoders then run in every batch).
        batch_trials: keep this many trials in flight and train those of one model
            structure as one batched model (``--batch-trials``; pays off on cached features, see
            :mod:`mmbench.search.batched`); 1 runs them one at a time.
        memory_budget_gb: preprocessed tensors kept in memory; past it a modality is streamed from
            memory-mapped files (default: ``$MMBENCH_MEMORY_BUDGET_GB`` or half the available
            memory; 0 streams every modality; see :mod:`mmbench.data.storage.spill`).
    """

    device: str = "auto"
    n_jobs: int = 1
    trials_per_gpu: int = 1
    compile: bool = False
    cache_dir: Path | None = None
    cache_size_gb: float | None = None
    memory_budget_gb: float | None = None
    batch_trials: int = 1

    def __post_init__(self) -> None:
        check_concurrency(n_jobs=self.n_jobs, trials_per_gpu=self.trials_per_gpu)
        values.integer(self.batch_trials, "--batch-trials", minimum=1)
        if self.batch_trials > 1 and self.n_jobs > 1:
            raise ConfigError("--batch-trials and --n-jobs cannot be combined: a batch already trains its trials together")
        for key in ("cache_size_gb", "memory_budget_gb"):
            if getattr(self, key) is not None:
                values.gigabytes(getattr(self, key), "--" + key.replace("_", "-"))


@dataclass(frozen=True)
class OutputOptions:
    """What is logged at the end besides the runs.

    Attributes:
        plots: log Optuna's study plots on the parent run at the end.
        log_model: log the best trial's model (PyTorch flavour + safetensors) at the end.
        classical: fit the classical baselines (majority, LightGBM, TF-IDF + logistic regression)
            before the trials (``None``: on under the ``medium`` and ``best`` presets).
        ensemble: build the ensemble of the study's finished runs at the end (``None``: on under
            any preset; never in a multi-objective search).
    """

    plots: bool = True
    log_model: bool = True
    classical: bool | None = None
    ensemble: bool | None = None


_GROUPS = {"budget": BudgetOptions, "space": SpaceOptions, "store": StoreOptions, "compute": ComputeOptions,
           "output": OutputOptions}
_GROUP_OF = {f.name: group for group, cls in _GROUPS.items() for f in dataclasses.fields(cls)}


@dataclass(frozen=True)
class SearchSettings:
    """One search: the task, the seed, the data folder and one option group per concern.

    Attributes:
        task: a built-in task name or a path to a task file.
        seed: seed of the sampler and of every trial (trial seed = seed + trial number).
        data_root: where the task's data files live.
    """

    task: str
    seed: int = 0
    data_root: Path | None = None
    budget: BudgetOptions = field(default_factory=BudgetOptions)
    space: SpaceOptions = field(default_factory=SpaceOptions)
    store: StoreOptions = field(default_factory=StoreOptions)
    compute: ComputeOptions = field(default_factory=ComputeOptions)
    output: OutputOptions = field(default_factory=OutputOptions)

    def __post_init__(self) -> None:
        values.seed(self.seed, "--seed")

    @classmethod
    def of(cls, task: str, **flags: Any) -> SearchSettings:
        """Settings from flat flag names (``n_trials=3, storage=..., objectives="metric,latency"``).

        Raises:
            ConfigError: a bad value; ``TypeError`` for a name that is no option.
        """
        return cls(task=task).replace(**flags)

    def replace(self, **flags: Any) -> SearchSettings:
        """A copy with some flat-named options changed (each routed to its group)."""
        top: dict[str, Any] = {}
        grouped: dict[str, dict[str, Any]] = {}
        for name, value in flags.items():
            if name == "objectives" and not isinstance(value, tuple):
                value = parse_objectives(value if isinstance(value, str) else ",".join(value))
            if name in _GROUP_OF:
                grouped.setdefault(_GROUP_OF[name], {})[name] = value
            elif name in ("task", "seed", "data_root"):
                top[name] = value
            else:
                raise TypeError(f"SearchSettings has no option {name!r}")
        for group, changes in grouped.items():
            top[group] = dataclasses.replace(getattr(self, group), **changes)
        return dataclasses.replace(self, **top)
