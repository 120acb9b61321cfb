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

import json
import os
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from mmbench.errors import TrackingError
from mmbench.infra.secrets import redact_url
from mmbench.tracking.layout import DEFAULT_TRACKING_URI, ROLE_STUDY, ROLE_TRIAL, TAG

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mmbench.train.loop import EpochReport

_MAX_PARAM_LENGTH = 6000




class Tracker:
    """A thin layer over :class:`mlflow.MlflowClient` that knows mmbench's run layout.

    Args:
        tracking_uri: any MLflow tracking URI (``sqlite:///...``, a folder, ``http://...``).
    """

    def __init__(self, tracking_uri: str = DEFAULT_TRACKING_URI) -> None:
        from mlflow import MlflowClient

        from mmbench.infra.retry import RetryingProxy, redacting_failure

        if _is_file_store(tracking_uri):
            # MLflow 3 keeps the folder store in maintenance mode and refuses it unless opted in;
            # a user who passes a folder has opted in (docs/search.md recommends SQLite)
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        # MLflow prints "View run ... at: <tracking URI>" for http stores: noise under --quiet, and
        # the URI may carry a password. Users who want the links set the variable to false.
        os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
        self.tracking_uri = tracking_uri
        # transient errors (server restarting, SQLite busy) are retried with backoff; what still
        # fails becomes a TrackingError whose message carries no credentials
        self.client: MlflowClient = RetryingProxy(  # type: ignore[assignment]
            MlflowClient(tracking_uri=tracking_uri), what=f"tracking URI {redact_url(tracking_uri)}",
            on_failure=redacting_failure(tracking_uri, "--tracking-uri", TrackingError),
        )

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
        self.log_params(run.info.run_id, params)
        return run.info.run_id

    def log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        entries = [Param(key, _param_value(value)) for key, value in params.items()]
        for start in range(0, len(entries), 100):
            self.client.log_batch(run_id, params=entries[start : start + 100])

    def log_epoch(self, run_id: str, report: EpochReport) -> None:
        """Per-epoch metrics with ``step = epoch``."""
        self.log_metrics(run_id, report.metrics, step=report.epoch)

    def log_metrics(self, run_id: str, metrics: Mapping[str, float], *, step: int = 0) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        entries = [Metric(key, float(value), now, step) for key, value in metrics.items()]
        if entries:
            self.client.log_batch(run_id, metrics=entries)

    def set_tags(self, run_id: str, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(run_id, tags=[RunTag(key, str(value)[:5000]) for key, value in tags.items()])

    def log_dict(self, run_id: str, content: Any, artifact_file: str) -> None:
        """Write a dict as a JSON or YAML artifact (by extension)."""
        self.client.log_dict(run_id, content, artifact_file)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        self.client.log_text(run_id, text, artifact_file)

    def finish(self, run_id: str, state: str, *, reason: str | None = None) -> None:
        """End a run. ``state`` is the Optuna state (COMPLETE, PRUNED, FAIL) or KILLED."""
        tags = {f"{TAG}state": state}
        if reason:
            tags[f"{TAG}reason"] = reason
        self.set_tags(run_id, tags)
        status = {"COMPLETE": "FINISHED", "PRUNED": "FINISHED", "FAIL": "FAILED", "KILLED": "KILLED"}.get(state, "FINISHED")
        self.client.set_terminated(run_id, status=status)

    # -- queries -------------------------------------------------------------------------------

    def task_experiments(self, task: str | None = None) -> dict[str, str]:
        """experiment id -> task name, for experiments mmbench created."""
        from mlflow.entities import ViewType

        experiments = self.client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
        found = {e.experiment_id: e.tags.get(f"{TAG}task", "") for e in experiments}
        found = {eid: name for eid, name in found.items() if name and (task is None or name == task)}
        if task is not None and not found:
            raise TrackingError(f"no runs of task '{task}' at tracking URI {redact_url(self.tracking_uri)}")
        return found

    def trial_runs(self, experiment_ids: list[str], *, extra_filter: str = "") -> list[Any]:
        """Every trial child run of the given experiments (all pages)."""
        filter_string = f"tags.`{TAG}role` = '{ROLE_TRIAL}'" + (f" and {extra_filter}" if extra_filter else "")
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(experiment_ids, filter_string=filter_string, max_results=1000, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs


def _is_file_store(uri: str) -> bool:
    """A plain folder path or ``file:`` URI (not ``sqlite:``, ``http:``, ``postgresql:``...)."""
    return uri.startswith("file:") or ("://" not in uri and not uri.startswith(("databricks", "sqlite:", "http")))


def _quote(value: str) -> str:
    return value.replace("'", "\\'")


def _param_value(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text[:_MAX_PARAM_LENGTH]
