"""The Optuna study behind ``mmbench search``: objective, sampler/pruner, resume, tracking.

One study per (task, study name). Each trial: suggest a configuration, build the model, train
it (reporting validation per epoch to the pruner), record everything in an MLflow child run,
and return the validation metric. A trial that raises is recorded FAILED with its reason and
the search goes on.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.config import SearchSpace, TrialConfig, build_search_space
from mmbench.errors import ConfigError, MmbenchError, unknown_name_message
from mmbench.progress import QuietReporter, Reporter
from mmbench.tracking import DEFAULT_STORAGE, DEFAULT_TRACKING_URI, TAG, Tracker, redact_url

if TYPE_CHECKING:
    import optuna

    from mmbench.data.prepared import PreparedData
    from mmbench.registry import Registry
    from mmbench.tasks import Task

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("hyperband", "median", "none")
DEFAULT_N_TRIALS = 10
DEFAULT_MAX_EPOCHS = 10
DEFAULT_PATIENCE = 3


@dataclass
class SearchSettings:
    """What ``mmbench search`` was asked to do (CLI flags override the task's ``search:``).

    Attributes:
        task: a built-in task name or a path to a task file.
        n_trials: target number of finished trials in the study (resume counts earlier ones).
        timeout: stop starting trials after this many seconds.
        study: the Optuna study name (default: the task name).
        storage: Optuna storage URL.
        tracking_uri: MLflow tracking URI.
        seed: seed of the sampler and of every trial (trial seed = seed + trial number).
        device: ``auto``, ``cpu``, ``cuda``.
        data_root: where the task's data files live.
        fusions: allowed fusions (default: the task's, else all).
        encoders: modality -> allowed encoders.
        fixed: parameter -> value not searched.
        sampler: one of :data:`SAMPLERS`.
        pruner: one of :data:`PRUNERS`.
        max_epochs: epochs per trial (default: the task's).
    """

    task: str
    n_trials: int | None = None
    timeout: float | None = None
    study: str | None = None
    storage: str = DEFAULT_STORAGE
    tracking_uri: str = DEFAULT_TRACKING_URI
    seed: int = 0
    device: str = "auto"
    data_root: Path | None = None
    fusions: Sequence[str] | None = None
    encoders: Mapping[str, Sequence[str]] | None = None
    fixed: Mapping[str, Any] = field(default_factory=dict)
    sampler: str = "tpe"
    pruner: str = "hyperband"
    max_epochs: int | None = None

    def __post_init__(self) -> None:
        if self.sampler not in SAMPLERS:
            raise ConfigError(f"--sampler: {unknown_name_message('sampler', self.sampler, SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise ConfigError(f"--pruner: {unknown_name_message('pruner', self.pruner, PRUNERS)}")
        if self.n_trials is not None and self.n_trials < 1:
            raise ConfigError(f"--n-trials must be at least 1, got {self.n_trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise ConfigError(f"--timeout must be positive, got {self.timeout}")
        if self.max_epochs is not None and self.max_epochs < 1:
            raise ConfigError(f"--max-epochs must be at least 1, got {self.max_epochs}")


@dataclass
class SearchOutcome:
    """What a search left behind."""

    task: str
    study: str
    n_trials: int
    n_complete: int
    best_value: float | None
    best_config: dict[str, Any] | None
    parent_run_id: str
    experiment_id: str


def run_search(settings: SearchSettings, *, registry: Registry | None = None, reporter: Reporter | None = None) -> SearchOutcome:
    """Run (or resume) a search and record it in MLflow.

    Raises:
        MmbenchError: bad task, data, restriction or a study that belongs to another task/space.
    """
    import optuna

    from mmbench.data.load import load_task_data
    from mmbench.registry import get_registry
    from mmbench.tasks import resolve_task

    registry = registry or get_registry()
    reporter = reporter or QuietReporter()
    task = resolve_task(settings.task, registry)
    data = load_task_data(task, registry, root=settings.data_root)
    search_defaults = dict(task.search)
    space = build_search_space(
        data.schema,
        registry,
        fusions=settings.fusions or search_defaults.get("fusions"),
        encoders=settings.encoders or search_defaults.get("encoders"),
        fixed={**search_defaults.get("fixed", {}), **settings.fixed},
        train_defaults={
            "max_epochs": settings.max_epochs or int(search_defaults.get("max_epochs", DEFAULT_MAX_EPOCHS)),
            "patience": int(search_defaults.get("patience", DEFAULT_PATIENCE)),
        },
    )
    if search_defaults.get("batch_sizes"):
        space.train_space["batch_size"] = type(space.train_space["batch_size"])(search_defaults["batch_sizes"])
    n_trials = settings.n_trials or int(search_defaults.get("n_trials", DEFAULT_N_TRIALS))
    timeout = settings.timeout or search_defaults.get("timeout")
    study_name = settings.study or task.name

    _quiet_libraries()
    study = _open_study(settings, study_name, task, space, n_trials)
    tracker = Tracker(settings.tracking_uri)
    experiment_id = tracker.experiment_id(task.name)
    parent_run_id = tracker.study_run(
        experiment_id,
        study_name,
        tags={f"{TAG}task": task.name, f"{TAG}fingerprint": data.fingerprint, f"{TAG}storage": redact_url(settings.storage)},
        params=_study_params(settings, task, data, registry, n_trials),
    )
    tracker.log_dict(parent_run_id, dict(task.raw), "task.yaml")
    objective = _Objective(task, data, space, registry, tracker, settings, experiment_id, parent_run_id, study_name, reporter)
    done = _finished_count(study)
    remaining = max(0, n_trials - done)
    registry.manager.hook.mmbench_search_started(task=task.name, study_name=study_name, settings=_public_settings(settings))
    reporter.search_started(task.name, study_name, n_trials, done)
    try:
        if remaining:
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=timeout,
                catch=(Exception,),
                callbacks=[optuna.study.MaxTrialsCallback(n_trials, states=None)],
            )
    finally:
        reporter.search_finished()
        best = _best(study)
        if best is not None:
            tracker.log_metrics(parent_run_id, {"best_val_score": best.value})
            tracker.set_tags(parent_run_id, {f"{TAG}best_trial": best.number})
        tracker.finish(parent_run_id, "COMPLETE")
    registry.manager.hook.mmbench_search_finished(
        task=task.name, study_name=study_name, n_trials=objective.n_run, best_value=None if best is None else best.value
    )
    return SearchOutcome(
        task=task.name,
        study=study_name,
        n_trials=len(study.trials),
        n_complete=len([t for t in study.trials if t.state.name == "COMPLETE"]),
        best_value=None if best is None else best.value,
        best_config=None if best is None else best.user_attrs.get("config"),
        parent_run_id=parent_run_id,
        experiment_id=experiment_id,
    )


class _Objective:
    """One trial: suggest, build, train, record. Returns the validation score."""

    def __init__(
        self,
        task: Task,
        data: PreparedData,
        space: SearchSpace,
        registry: Registry,
        tracker: Tracker,
        settings: SearchSettings,
        experiment_id: str,
        parent_run_id: str,
        study_name: str,
        reporter: Reporter,
    ) -> None:
        self.task, self.data, self.space, self.registry, self.tracker = task, data, space, registry, tracker
        self.settings, self.experiment_id, self.parent_run_id = settings, experiment_id, parent_run_id
        self.study_name, self.reporter = study_name, reporter
        self.n_run = 0

    def __call__(self, trial: optuna.Trial) -> float:
        import optuna

        from mmbench.model import build_model, preprocessors_for
        from mmbench.train import TrainSettings, fit, resolve_device

        self.n_run += 1
        started = time.perf_counter()
        config = self.space.suggest(trial, self.registry, seed=self.settings.seed + trial.number)
        trial.set_user_attr("config", config.to_dict())
        device = str(resolve_device(self.settings.device))
        run_id = self.tracker.start_trial(
            self.experiment_id,
            self.parent_run_id,
            run_name=f"trial {trial.number}: {config.combination}",
            tags=self._tags(trial, config, device),
            params=config.flat_params(),
        )
        trial.set_user_attr("mlflow_run_id", run_id)
        self.tracker.log_dict(run_id, config.to_dict(), "config.yaml")
        self.reporter.trial_started(trial.number, config.combination, int(config.train["max_epochs"]))
        metric = self.task.metric

        def on_epoch(report: Any) -> None:
            self.tracker.log_epoch(run_id, report)
            value = report.validation[metric]
            self.reporter.epoch_finished(trial.number, report.epoch, value)
            trial.report(value, report.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {report.epoch} with val_{metric}={value:.4f}")

        try:
            infos, tensors = self.data.tensors(preprocessors_for(config, self.data.schema, self.registry))
            model = build_model(config, infos, self.data.schema.n_classes, self.registry)
            settings = TrainSettings.from_config(config.train, metric=metric, seed=config.seed, device=self.settings.device)
            result = fit(model, tensors, settings, n_classes=self.data.schema.n_classes, on_epoch=on_epoch)
        except optuna.TrialPruned as pruned:
            self._finish(trial, run_id, config, "PRUNED", None, {}, str(pruned), started)
            raise
        except BaseException as error:
            reason = _reason(error)
            self._finish(trial, run_id, config, "FAIL" if isinstance(error, Exception) else "KILLED", None, {}, reason, started)
            if isinstance(error, Exception) and not isinstance(error, MmbenchError):
                trial.set_user_attr("traceback", traceback.format_exc()[-4000:])
            raise
        final = {f"val_{k}": v for k, v in result.validation.items()}
        final.update({f"test_{k}": v for k, v in result.test.items()})
        final.update({"val_score": result.validation[metric], "test_score": result.test[metric]})
        final.update({"best_epoch": result.best_epoch, "n_parameters": result.n_parameters})
        value = result.validation[metric]
        self._finish(trial, run_id, config, "COMPLETE", value, final, None, started)
        return value

    def _tags(self, trial: optuna.Trial, config: TrialConfig, device: str) -> dict[str, str]:
        tags = {
            f"{TAG}task": self.task.name,
            f"{TAG}study": self.study_name,
            f"{TAG}trial": str(trial.number),
            f"{TAG}fusion": config.fusion,
            f"{TAG}combination": config.combination,
            f"{TAG}metric": self.task.metric,
            f"{TAG}seed": str(config.seed),
            f"{TAG}device": device,
            f"{TAG}fingerprint": self.data.fingerprint,
        }
        tags.update({f"{TAG}encoder.{m}": e for m, e in config.encoders.items()})
        return tags

    def _finish(self, trial: optuna.Trial, run_id: str, config: TrialConfig, state: str, value: float | None,
                metrics: dict[str, float], reason: str | None, started: float) -> None:
        metrics = {**metrics, "duration_s": time.perf_counter() - started}
        self.tracker.log_metrics(run_id, metrics)
        self.tracker.finish(run_id, state, reason=reason)
        if reason:
            trial.set_user_attr("reason", reason)
        previous = _best(trial.study)
        candidates = [v for v in (None if previous is None else previous.value, value) if v is not None]
        self.reporter.trial_finished(trial.number, state, value, max(candidates) if candidates else None, reason)
        result = {**metrics, **({"reason": reason} if reason else {})}
        self.registry.manager.hook.mmbench_trial_finished(
            task=self.task.name, study_name=self.study_name, trial_number=trial.number, state=state,
            config=config.to_dict(), result=result,
        )


def _quiet_libraries() -> None:
    """Keep Optuna's and MLflow's info logs and experimental-feature warnings out of the user's way."""
    import logging
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _open_study(settings: SearchSettings, study_name: str, task: Task, space: SearchSpace, n_trials: int) -> optuna.Study:
    """Create or load the study; refuse one that belongs to another task or space."""
    import optuna

    sampler = _make_sampler(settings, space)
    pruner = _make_pruner(settings.pruner, n_trials)
    try:
        study = optuna.create_study(study_name=study_name, storage=settings.storage, load_if_exists=True,
                                    direction="maximize", sampler=sampler, pruner=pruner)
    except (ValueError, ImportError) as error:
        raise ConfigError(f"--storage {redact_url(settings.storage)}: {_reason(error)}") from None
    except Exception as error:  # sqlalchemy errors: bad URL, unreachable server
        raise ConfigError(f"--storage {redact_url(settings.storage)}: cannot open ({type(error).__name__})") from None
    owner = study.user_attrs.get("mmbench.task")
    signature = study.user_attrs.get("mmbench.space")
    if owner is None:
        study.set_user_attr("mmbench.task", task.name)
        study.set_user_attr("mmbench.space", space.signature())
    elif owner != task.name:
        raise ConfigError(f"study '{study_name}' belongs to task '{owner}', not '{task.name}'; choose another --study")
    elif signature != space.signature():
        raise ConfigError(
            f"study '{study_name}' was created with a different search space (fusions, encoders or --set); "
            "resume it with the same options or choose another --study"
        )
    return study


def _make_sampler(settings: SearchSettings, space: SearchSpace) -> optuna.samplers.BaseSampler:
    import optuna

    if settings.sampler == "random":
        return optuna.samplers.RandomSampler(seed=settings.seed)
    if settings.sampler == "grid":
        raise ConfigError("--sampler grid is not available yet")
    return optuna.samplers.TPESampler(seed=settings.seed, multivariate=True, group=True, n_startup_trials=5)


def _make_pruner(name: str, n_trials: int) -> optuna.pruners.BasePruner:
    import optuna

    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.HyperbandPruner(min_resource=1, reduction_factor=3)


def _finished_count(study: optuna.Study) -> int:
    from optuna.trial import TrialState

    return len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL)))


def _best(study: optuna.Study) -> Any:
    from optuna.trial import TrialState

    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not complete:
        return None
    return max(complete, key=lambda t: t.value if t.value is not None and math.isfinite(t.value) else -math.inf)


def _study_params(settings: SearchSettings, task: Task, data: PreparedData, registry: Registry, n_trials: int) -> dict[str, Any]:
    params: dict[str, Any] = {f"search.{k}": v for k, v in _public_settings(settings).items()}
    params["search.n_trials"] = n_trials
    params["task"] = task.name
    params["data.fingerprint"] = data.fingerprint
    params.update({f"data.{split}_rows": n for split, n in data.split_sizes.items()})
    params.update({f"plugin.{p.name}": f"{p.distribution} {p.version}" for p in registry.plugins.values()})
    return params


def _public_settings(settings: SearchSettings) -> dict[str, Any]:
    """Settings safe to log: URLs redacted."""
    return {
        "sampler": settings.sampler,
        "pruner": settings.pruner,
        "n_trials": settings.n_trials,
        "timeout": settings.timeout,
        "seed": settings.seed,
        "device": settings.device,
        "storage": redact_url(settings.storage),
        "tracking_uri": redact_url(settings.tracking_uri),
        "fusions": list(settings.fusions or []),
        "encoders": {k: list(v) for k, v in (settings.encoders or {}).items()},
        "fixed": dict(settings.fixed),
    }


def _reason(error: BaseException) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    if not isinstance(error, MmbenchError):
        text = f"{type(error).__name__}: {text}"
    return text[:500]
