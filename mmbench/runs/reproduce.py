"""Rebuild a recorded run and retrain it: ``mmbench reproduce RUN_ID``.

A trial's run holds everything needed: the resolved configuration (``config.yaml`` artifact,
seed included) and, on its study's parent run, the task file as it was searched
(``task.yaml``). The data is reloaded through the task's provider (the fingerprint tells
whether it changed), preprocessing is refitted on the train split (deterministic) and the
model retrained with the same seed; on the CPU that gives the same metrics, to the last digit.
:class:`RunSource` is also what ``evaluate`` and ``predict`` start from.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError, TrackingError
from mmbench.infra.secrets import redact_url
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    from mmbench.search.trials import TrialConfig
    from mmbench.data.prepared import PreparedData, SplitTensors
    from mmbench.data.schema import ModalityInfo, Schema
    from mmbench.train.model import MultimodalModel
    from mmbench.registry import Registry
    from mmbench.tasks.files import Task
    from mmbench.train.loop import FitResult

from mmbench.tracking.layout import CONFIG_FILE, ROLE_ENSEMBLE, TASK_FILE


@dataclass
class RunSource:
    """A recorded run, rebuilt: its configuration, task, data and the tensors its model reads.

    Attributes:
        run_id: the MLflow run.
        run: the MLflow ``Run`` (tags, params, metrics).
        config: the trial's configuration.
        task: the task it was run on.
        data: the task's data, reloaded.
        infos: fitted modality infos of the configuration's preprocessors.
        tensors: split -> tensors for the configuration's modalities.
    """

    run_id: str
    run: Any
    config: TrialConfig
    task: Task
    data: PreparedData
    infos: dict[str, ModalityInfo]
    tensors: dict[str, SplitTensors]

    @property
    def fingerprint_matches(self) -> bool:
        """Whether the reloaded data is the data the run was trained on."""
        recorded = self.run.data.tags.get(f"{TAG}fingerprint")
        return recorded is None or recorded == self.data.fingerprint


def get_run(tracker: Tracker, run_id: str) -> Any:
    """The MLflow run, or a :class:`TrackingError` naming the id and the store."""
    try:
        return tracker.get_run(run_id)
    except Exception:  # noqa: BLE001 - MlflowException or a store error: either way, no such run here
        raise TrackingError(f"no run '{run_id}' at tracking URI {redact_url(tracker.tracking_uri)}") from None


def download_artifact(tracker: Tracker, run_id: str, path: str, destination: str) -> str | None:
    """Download one artifact of a run into ``destination``; ``None`` when the run has no such artifact."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # one small file: no progress bar
    try:
        return tracker.download_artifact(run_id, path, destination)
    except Exception:  # noqa: BLE001 - artifact stores raise different types for a missing file
        return None


def read_artifact(tracker: Tracker, run_id: str, path: str) -> str | None:
    """Text of a run's artifact, or ``None`` when the run has no such artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        local = download_artifact(tracker, run_id, path, tmp)
        return None if local is None else Path(local).read_text(encoding="utf-8")


def run_config(tracker: Tracker, run_id: str) -> TrialConfig:
    """The configuration recorded on a run (its ``config.yaml`` artifact)."""
    import yaml

    from mmbench.search.trials import TrialConfig

    text = read_artifact(tracker, run_id, CONFIG_FILE)
    if text is None:
        raise TrackingError(f"run '{run_id}' has no {CONFIG_FILE} artifact; only runs recorded by `mmbench search` can be rebuilt")
    try:
        return TrialConfig.from_dict(yaml.safe_load(text))
    except ConfigError as error:
        raise TrackingError(f"run '{run_id}': {CONFIG_FILE}: {error}") from None


def run_task(tracker: Tracker, run: Any, registry: Registry) -> Task:
    """The task of a run: its study's ``task.yaml`` as searched, else the task named by its tag."""
    import yaml

    from mmbench.tasks.files import parse_task, resolve_task

    parent = run.data.tags.get("mlflow.parentRunId")
    if parent:
        text = read_artifact(tracker, parent, TASK_FILE)
        if text is not None:
            recorded = tracker.get_run(parent).data.params.get("task.file", "")
            source: Path | str = Path(recorded) if recorded else f"run {parent}: {TASK_FILE}"
            return parse_task(yaml.safe_load(text), source=source)
    name = run.data.tags.get(f"{TAG}task")
    if not name:
        raise TrackingError(f"run '{run.info.run_id}' names no task (tag {TAG}task) and its study has no {TASK_FILE}")
    return resolve_task(name, registry)


def restrict_schema(schema: Schema, config: TrialConfig) -> Schema:
    """The schema with only the configuration's modalities (unimodal baselines read one)."""
    return dataclasses.replace(schema, modalities={m: i for m, i in schema.modalities.items() if m in config.encoders})


def config_tensors(config: TrialConfig, data: PreparedData, registry: Registry) -> tuple[dict[str, ModalityInfo], dict[str, SplitTensors]]:
    """Fitted infos and split tensors for the modalities a configuration reads."""
    from mmbench.train.model import preprocessors_for

    return data.tensors(preprocessors_for(config, restrict_schema(data.schema, config), registry))


def load_source(tracker: Tracker, run_id: str, registry: Registry, *, data_root: Path | None = None) -> RunSource:
    """Rebuild a run's configuration, task, data and tensors."""
    from mmbench.tasks.files import metric_for
    from mmbench.tasks.loading import load_task_data

    run = get_run(tracker, run_id)
    config = run_config(tracker, run_id)
    task = run_task(tracker, run, registry)
    data = load_task_data(task, registry, root=data_root)
    task = metric_for(task, data.schema.task_type)
    missing = [m for m in config.encoders if m not in data.schema.modalities]
    if missing:
        raise ConfigError(f"run '{run_id}': modality {', '.join(missing)} of its config is not in task '{task.name}'")
    infos, tensors = config_tensors(config, data, registry)
    return RunSource(run_id, run, config, task, data, infos, tensors)


def build(source: RunSource, registry: Registry) -> MultimodalModel:
    """An untrained model of the source's configuration (seeded as in the search)."""
    from mmbench.train.model import build_model

    return build_model(source.config, source.infos, source.data.schema.n_outputs, registry, target_scale=source.data.schema.target_scale)


def train_config(config: TrialConfig, task: Task, data: PreparedData, infos: dict[str, ModalityInfo],
                 tensors: dict[str, SplitTensors], registry: Registry, *, device: str = "cpu") -> tuple[MultimodalModel, FitResult]:
    """Build and train a configuration exactly as a search trial does (same seeds, same order; with
    ``split.folds``, every fold: the last fold's model and the means, :mod:`mmbench.train.folds`)."""
    from mmbench.train.model import build_model
    from mmbench.train.loop import TrainSettings, fit

    def build() -> MultimodalModel:
        return build_model(config, infos, data.schema.n_outputs, registry, target_scale=data.schema.target_scale)

    settings = TrainSettings.from_config(config.train, metric=task.metric, seed=config.seed, device=device)
    if data.folds:
        from mmbench.train.folds import fit_folds

        folds = fit_folds(build, tensors, data.folds, settings, n_classes=data.schema.n_outputs)
        return folds.model, folds.result
    model = build()
    return model, fit(model, tensors, settings, n_classes=data.schema.n_outputs)


def final_metrics(result: FitResult, metric: str) -> dict[str, float]:
    """The run metrics a finished trial records (``val_*``, ``test_*``, scores, best epoch)."""
    final = {f"val_{k}": v for k, v in result.validation.items()}
    final.update({f"test_{k}": v for k, v in result.test.items()})
    final.update({"val_score": result.validation[metric], "test_score": result.test[metric], "best_epoch": result.best_epoch})
    return final


def recorded_finals(tracker: Tracker, run: Any, names: Any) -> dict[str, float]:
    """The final values of metrics recorded on a run (step 0).

    ``run.data.metrics`` holds each metric's value at its highest step, which for ``val_*``
    is the last epoch's, not the best epoch's final value logged at step 0.
    """
    finals: dict[str, float] = {}
    for name in names:
        if name not in run.data.metrics:
            continue
        history = [m for m in tracker.metric_history(run.info.run_id, name) if m.step == 0]
        finals[name] = max(history, key=lambda m: m.timestamp).value if history else run.data.metrics[name]
    return finals


@dataclass
class Reproduction:
    """Recorded against retrained metrics of one run."""

    run_id: str
    combination: str
    seed: int
    recorded: dict[str, float]
    reproduced: dict[str, float]
    fingerprint_matches: bool
    differences: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, value in self.recorded.items():
            if name in self.reproduced:
                self.differences[name] = abs(self.reproduced[name] - value)

    @property
    def identical(self) -> bool:
        """Every metric recorded on the run came out equal (to float tolerance of the store)."""
        return bool(self.differences) and all(d <= 1e-9 or (math.isnan(d)) for d in self.differences.values())

    def to_json(self) -> str:
        return json.dumps({**dataclasses.asdict(self), "identical": self.identical}, indent=2)


def reproduce(tracker: Tracker, run_id: str, registry: Registry, *, data_root: Path | None = None,
              device: str = "cpu") -> Reproduction:
    """Rebuild a run's configuration and retrain it; compare with the recorded metrics.

    Raises:
        TrackingError: unknown run, or a run without ``config.yaml``.
    """
    run = get_run(tracker, run_id)
    if is_ensemble(run):  # nothing to retrain: the selection is rerun on its candidates' stored predictions
        return reproduce_ensemble(tracker, run)
    source = load_source(tracker, run_id, registry, data_root=data_root)
    _, result = train_config(source.config, source.task, source.data, source.infos, source.tensors, registry, device=device)
    reproduced = final_metrics(result, source.task.metric)
    recorded = recorded_finals(tracker, source.run, reproduced)
    outcome = Reproduction(run_id, source.config.combination, source.config.seed, recorded, reproduced, source.fingerprint_matches)
    tracker.set_tags(run_id, {f"{TAG}reproduced": "identical" if outcome.identical else
                              f"differs (max {max(outcome.differences.values(), default=0):.3g})"})
    return outcome


def is_ensemble(run: Any) -> bool:
    """Whether a run is an ensemble (:mod:`mmbench.search.ensemble_stage`): reproduced and predicted through its members."""
    return run.data.tags.get(f"{TAG}role") == ROLE_ENSEMBLE


def reproduce_ensemble(tracker: Tracker, run: Any) -> Reproduction:
    """Rerun the selection and compare weights (``weight:<run id>``) and final metrics with the record."""
    from mmbench.search.ensemble_stage import ensemble_record, reselect

    record = ensemble_record(tracker, run)
    weights, metrics = reselect(tracker, run)
    recorded = {f"weight:{m['run_id']}": float(m["weight"]) for m in record["members"]}
    recorded.update({k: run.data.metrics[k] for k in metrics if k in run.data.metrics})
    reproduced = {**{f"weight:{k}": w for k, w in weights.items()}, **metrics}
    for name in recorded.keys() - reproduced.keys():  # a member the rerun did not choose
        reproduced[name] = 0.0
    outcome = Reproduction(run.info.run_id, run.data.tags.get(f"{TAG}combination", "ensemble"), int(record["seed"]),
                           recorded, reproduced, fingerprint_matches=True)
    tracker.set_tags(run.info.run_id, {f"{TAG}reproduced": "identical" if outcome.identical else "differs"})
    return outcome
