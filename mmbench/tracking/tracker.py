"""Everything MLflow: experiments per task, a parent run per study, a child run per trial.

Layout (the leaderboard is a query over it):

* experiment ``<task name>``;
* parent run, tag ``mmbench.role=study``: search settings, task file, plugin versions, data
  fingerprint; one per (task, study), shared by every worker of the study;
* child runs, tag ``mmbench.role=trial``: flattened parameters, per-epoch metrics
  (step = epoch), final ``val_*`` and ``test_*`` metrics, tags (task, fusion, encoders, study,
  trial number and state, seed, device, fingerprint), the resolved configuration.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import TrackingError
from mmbench.infra.secrets import redact_url, remember_secrets
from mmbench.tracking.layout import DEFAULT_TRACKING_URI, ROLE_STUDY, ROLE_TRIAL, TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mmbench.train.loop import EpochReport

_MAX_PARAM_LENGTH = 6000

#: MLflow's HTTP limits, set unless the user set them: one attempt of 15 s per request (MLflow's
#: defaults, 7 retries of a 120 s timeout, sit inside mmbench's retries and froze a command on an
#: unreachable server for minutes); mmbench retries, and gives a call up after :data:`MAX_WAIT_S`.
HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_TIMEOUT": "15", "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0",
               "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1"}
MAX_WAIT_S = 25.0
#: MLflow's ``log_batch`` limits (``mlflow.utils.validation``): entities in all, metrics, params and tags per request
_BATCH_ENTITIES, _BATCH_METRICS, _BATCH_PARAMS_TAGS = 1000, 1000, 100


@dataclass
class _Held:
    """A deferred run's metrics, params and tags, in the order they were logged (see :meth:`Tracker.deferred`)."""

    metrics: list[Any] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """A thin layer over :class:`mlflow.MlflowClient` that knows mmbench's run layout.

    Args:
        tracking_uri: any MLflow tracking URI (``sqlite:///...``, a folder, ``http://...``).
    """

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI) -> None:
        from mlflow import MlflowClient

        from mmbench.infra.databases import tune_sqlite, with_driver
        from mmbench.infra.retry import RetryingProxy, is_transient_or_creation_race, redacting_failure, retry_call

        if _is_file_store(tracking_uri):
            # MLflow 3 keeps the folder store in maintenance mode and refuses it unless opted in;
            # a user who passes a folder has opted in (docs/search.md recommends SQLite)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # MLflow prints "View run ... at: <tracking URI>" for http stores: noise under --quiet, and
        # the URI may carry a password. Users who want the links set the variable to false.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        for name, value in HTTP_LIMITS.items():  # the user's own settings win
            os.environ.setdefault(name, value)
        remember_secrets(tracking_uri)
        tune_sqlite(tracking_uri)
        self.tracking_uri = tracking_uri
        shown = f"tracking URI {redact_url(tracking_uri)}"
        on_failure = redacting_failure(tracking_uri, "--tracking-uri", TrackingError)

        def open_store() -> MlflowClient:
            client = MlflowClient(tracking_uri=with_driver(tracking_uri))  # MLflow 3 opens (and migrates) the store here
            client.search_experiments(max_results=1)  # an unreachable server fails now, once
            return client

        try:  # workers starting together on a new database race to create its tables: the loser retries
            with _creation_lock(tracking_uri):
                client = retry_call(open_store, what=shown, retry_if=is_transient_or_creation_race, give_up_after=MAX_WAIT_S)
        except Exception as error:
            raise (on_failure(error) or error) from None
        # transient errors (server restarting, SQLite busy) are retried with backoff; what still
        # fails becomes a TrackingError whose message carries no credentials
        self.client: MlflowClient = RetryingProxy(  # type: ignore[assignment]
            client, what=shown, on_failure=on_failure, give_up_after=MAX_WAIT_S)
        self._held: dict[str, _Held] = {}  # run id -> what a deferred run has logged so far
        self._held_lock = threading.Lock()
        self._local = threading.local()  # .started: runs started in this thread under deferred()

    @contextlib.contextmanager
    def deferred(self) -> Iterator[None]:
        """Trial runs started in this thread inside the block hold their metrics, params and tags
        (logged from any thread) and write them in one ``log_batch`` when the run ends
        (:meth:`finish`, :meth:`close`) or the block is left: a batched trial (``--batch-trials``)
        then costs a handful of store writes instead of one per epoch and value. What is recorded
        is the same (metric timestamps are those of the logging calls); only when it is written changes."""
        self._local.started = started = []
        try:
            yield
        finally:
            self._local.started = None
            for run_id in started:
                self._flush(run_id)

    def _hold(self, run_id: str) -> _Held | None:
        """The held record of a deferred run (``None``: write now)."""
        with self._held_lock:
            return self._held.get(run_id)

    def _flush(self, run_id: str) -> None:
        """Write what a deferred run holds, in as few ``log_batch`` calls as MLflow's limits allow."""
        from mlflow.entities import Param, RunTag

        with self._held_lock:
            held = self._held.pop(run_id, None)
        if held is None:
            return
        params = [Param(key, value) for key, value in held.params.items()]
        tags = [RunTag(key, value) for key, value in held.tags.items()]
        metrics = held.metrics
        while params or tags or metrics:
            batch_params, params = params[:_BATCH_PARAMS_TAGS], params[_BATCH_PARAMS_TAGS:]
            batch_tags, tags = tags[:_BATCH_PARAMS_TAGS], tags[_BATCH_PARAMS_TAGS:]
            room = min(_BATCH_METRICS, _BATCH_ENTITIES - len(batch_params) - len(batch_tags))
            batch_metrics, metrics = metrics[:room], metrics[room:]
            self.client.log_batch(run_id, metrics=batch_metrics, params=batch_params, tags=batch_tags)

    # -- experiments and runs ------------------------------------------------------------------

    def experiment_id(self, task: str, *, create: bool = True) -> str | None:
        """The experiment of a task, created on first use."""
        experiment = self.client.get_experiment_by_name(task)
        if experiment is not None:
            return experiment.experiment_id
        if not create:
            return None
        try:
            return self.client.create_experiment(task, tags={f"{TAG}task": task})
        except Exception:
            # another worker created it between our lookup and create
            experiment = self.client.get_experiment_by_name(task)
            if experiment is None:
                raise
            return experiment.experiment_id

    def study_run(self, experiment_id: str, study_name: str, *, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """The study's parent run: found by tag when resuming, else created."""
        runs = self.client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG}role` = '{ROLE_STUDY}' and tags.`{TAG}study` = '{_quote(study_name)}'",
            max_results=1,
            order_by=["attributes.start_time ASC"],
        )
        if runs:
            run_id = runs[0].info.run_id
            self.client.update_run(run_id, status="RUNNING")
            return run_id
        all_tags = {**tags, f"{TAG}role": ROLE_STUDY, f"{TAG}study": study_name}
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=f"study {study_name}")
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def start_trial(self, experiment_id: str, parent_run_id: str, *, run_name: str, tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """Create a trial's child run and log its parameters."""
        all_tags = {**tags, f"{TAG}role": ROLE_TRIAL, "mlflow.parentRunId": parent_run_id, f"{TAG}state": "RUNNING"}
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=run_name)
        started = getattr(self._local, "started", None)
        if started is not None:  # inside deferred(): this run's values are held until it ends
            with self._held_lock:
                self._held[run.info.run_id] = _Held()
            started.append(run.info.run_id)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def start_derived(self, experiment_id: str, parent_run_id: str | None, *, role: str, run_name: str,
                      tags: Mapping[str, str], params: Mapping[str, Any]) -> str:
        """Create a child run of another role (ensemble, classical baseline); end it with :meth:`finish`."""
        all_tags = {**tags, f"{TAG}role": role, f"{TAG}state": "RUNNING"}
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(experiment_id, tags=all_tags, run_name=run_name)
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        held = self._hold(run_id)
        if held is not None:
            held.params.update({key: _param_value(value) for key, value in params.items()})
            return
        entries = [Param(key, _param_value(value)) for key, value in params.items()]
        for start in range(0, len(entries), _BATCH_PARAMS_TAGS):
            self.client.log_batch(run_id, params=entries[start : start + _BATCH_PARAMS_TAGS])

    def log_epoch(self, run_id: str, report: EpochReport) -> None:
        """Per-epoch metrics with ``step = epoch``."""
        self.log_metrics(run_id, report.metrics, step=report.epoch)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        held = self._hold(run_id)
        if held is not None:
            held.metrics.extend(entries)
        elif entries:
            self.client.log_batch(run_id, metrics=entries)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        held = self._hold(run_id)
        if held is not None:  # a later value of a key wins, as in MLflow
            held.tags.update({key: str(value)[:5000] for key, value in tags.items()})
            return
        self.client.log_batch(run_id, tags=[RunTag(key, str(value)[:5000]) for key, value in tags.items()])

    def log_dict(self, run_id: str, content: Any, artifact_file: str) -> None:
        """Write a dict as a JSON or YAML artifact (by extension)."""
        self.client.log_dict(run_id, content, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def log_artifact(self, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        """Upload one local file into the run's artifacts (under ``artifact_path``)."""
        self.client.log_artifact(run_id, local_path, artifact_path)

    def log_artifacts(self, run_id: str, local_dir: str, artifact_path: str | None = None) -> None:
        """Upload a local folder into the run's artifacts (under ``artifact_path``)."""
        self.client.log_artifacts(run_id, local_dir, artifact_path)

    def log_figure(self, run_id: str, figure: Any, artifact_file: str) -> None:
        """Save a matplotlib figure as an image artifact."""
        self.client.log_figure(run_id, figure, artifact_file)

    def create_run(self, experiment_id: str, *, tags: Mapping[str, str], run_name: str) -> str:
        """A new run with these tags (a parent by ``mlflow.parentRunId``); returns its id."""
        return self.client.create_run(experiment_id, tags=dict(tags), run_name=run_name).info.run_id

    def close(self, run_id: str, status: str = "FINISHED") -> None:
        """End a run with an MLflow status, leaving mmbench's state tags as they are (see :meth:`finish`)."""
        self._flush(run_id)
        self.client.set_terminated(run_id, status=status)

    def reopen(self, run_id: str) -> None:
        """Mark a run RUNNING again (a resumed study's parent run)."""
        self.client.update_run(run_id, status="RUNNING")

    def finish(self, run_id: str, state: str, *, reason: str | None = None) -> None:
        """End a run. ``state`` is the Optuna state (COMPLETE, PRUNED, FAIL) or KILLED."""
        tags = {f"{TAG}state": state}
        if reason:
            tags[f"{TAG}reason"] = reason
        self.set_tags(run_id, tags)
        self._flush(run_id)
        status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}.get(state, "FINISHED")
        self.client.set_terminated(run_id, status=status)

    # -- queries -------------------------------------------------------------------------------

    def get_run(self, run_id: str) -> Any:
        """The MLflow run (raises MLflow's error for an unknown id)."""
        return self.client.get_run(run_id)

    def run_exists(self, run_id: str) -> bool:
        """Whether this store holds a run of that id."""
        try:
            self.client.get_run(run_id)
        except Exception:  # noqa: BLE001 - MLflow raises for an unknown id
            return False
        return True

    def search_runs(self, experiment_ids: list[str], filter_string: str, *, order_by: list[str] | None = None,
                    max_results: int = 1000) -> list[Any]:
        """One page of runs matching an MLflow filter (see :meth:`trial_runs` for every page of a role)."""
        return list(self.client.search_runs(experiment_ids, filter_string=filter_string, order_by=order_by,
                                            max_results=max_results))

    def download_artifact(self, run_id: str, path: str, destination: str) -> str:
        """Download one artifact into ``destination``; returns the local path (raises when it is missing)."""
        return self.client.download_artifacts(run_id, path, destination)

    def metric_history(self, run_id: str, name: str) -> list[Any]:
        """Every logged value of one metric (``step``, ``timestamp``, ``value``)."""
        return list(self.client.get_metric_history(run_id, name))

    def task_experiments(self, task: str | None = None) -> dict[str, str]:
        """experiment id -> task name, for experiments mmbench created."""
        from mlflow.entities import ViewType

        experiments = self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        found = {e.experiment_id: e.tags.get(f"{TAG}task", "") for e in experiments}
        found = {eid: name for eid, name in found.items() if name and (task is None or name == task)}
        if task is not None and not found:
            raise TrackingError(f"no runs of task '{task}' at tracking URI {redact_url(self.tracking_uri)}")
        return found

    def trial_runs(self, experiment_ids: list[str], *, extra_filter: str = "", role: str = ROLE_TRIAL) -> list[Any]:
        """Every child run of the given experiments with this role (trials by default; all pages)."""
        filter_string = f"tags.`{TAG}role` = '{role}'" + (f" and {extra_filter}" if extra_filter else "")
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs


def _creation_lock(uri: str) -> contextlib.AbstractContextManager[object]:
    """For a SQLite store, a file lock beside it: MLflow's migrations of a new SQLite file by two
    processes at once leave it half-migrated (alembic batch tables), which no retry repairs."""
    if not uri.startswith("sqlite:///") or uri == "sqlite:///:memory:":
        return contextlib.nullcontext()
    from filelock import FileLock

    path = Path(uri[len("sqlite:///"):])
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=MAX_WAIT_S * 4) if path.parent.is_dir() else contextlib.nullcontext()


def _is_file_store(uri: str) -> bool:
    """A plain folder path or ``file:`` URI (not ``sqlite:``, ``http:``, ``postgresql:``...)."""
    return uri.startswith("file:") or ("://" not in uri and not uri.startswith(("databricks", "sqlite:", "http")))


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM_LENGTH]
