"""Faults survived: a SIGKILLed worker, Ctrl-C / SIGTERM, broken plugins, transient store errors."""

from __future__ import annotations

import os
import signal
import sqlite3
import time

import optuna
import pytest
import torch
from torch import nn

from mmbench import Encoded, Encoder, hookimpl
from mmbench.search.storage import with_driver
from tests.servers import MlflowServer, PostgresServer, start_cli
from tests.test_distributed import assert_consistent, start_worker, study_runs, write_task

# -- a worker killed with SIGKILL mid-trial -------------------------------------------------------


def test_sigkilled_worker_trial_fails_by_heartbeat_and_study_completes(tmp_path, postgres: PostgresServer,
                                                                       mlflow_server: MlflowServer):
    task = write_task(tmp_path, "fault-kill", n_samples=160, epochs=3, patience=3)
    storage = postgres.database("sigkill")
    n_trials = 16  # enough work left after the kill for the survivors to outlive the 2 s grace period
    workers = [start_worker(task, "kill", storage, mlflow_server.url, seed=i, n_trials=n_trials,
                            extra=("--heartbeat", "1", "--pruner", "none")) for i in range(3)]
    pids = {w.pid: w for w in workers}
    victim, victim_trial = _wait_for_running_trial(storage, "kill", pids)
    os.kill(victim.pid, signal.SIGKILL)
    victim.wait(timeout=30)
    survivors = [w for w in workers if w is not victim]
    for worker in survivors:
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err[-3000:]

    study = optuna.load_study(study_name="kill", storage=with_driver(storage))
    killed = study.trials[victim_trial]
    assert killed.state.name == "FAIL"
    assert killed.user_attrs["mmbench.interrupted"] is True
    assert "no heartbeat" in killed.user_attrs["reason"]
    retries = [t for t in study.trials if t.user_attrs.get("mmbench.retry_of") == victim_trial]
    assert len(retries) == 1 and retries[0].params == killed.params

    from mmbench.search.resume import finished_count

    assert finished_count(study) >= n_trials  # the interrupted trial does not count; the others made up for it
    parents, runs = study_runs(mlflow_server.url, "fault-kill", "kill")
    killed_run = next(r for r in runs if int(r.data.tags["mmbench.trial"]) == victim_trial)
    assert killed_run.info.status == "KILLED"
    assert "no heartbeat" in killed_run.data.tags["mmbench.reason"]
    waiting = [t for t in study.trials if t.state.name == "WAITING"]  # a retry queued after the budget was met
    assert len(runs) == len(study.trials) - len(waiting)
    assert_consistent(study, parents, runs)


def _wait_for_running_trial(storage_url: str, study_name: str, workers: dict, timeout: float = 300):
    """(worker process, trial number) of a trial RUNNING with its MLflow run started, once every worker ran one.

    Waiting until each worker has started a trial means each is past its start-up, where a search
    closes the trials of dead workers of its own machine at once (:mod:`mmbench.search.resume`, reason
    "stopped during the trial"); after that only the survivors' heartbeat check can find the
    killed worker's trial - the mechanism that also works across machines, which this test is about.
    """
    from optuna.storages import RDBStorage
    from optuna.trial import TrialState

    storage = RDBStorage(with_driver(storage_url))
    deadline = time.monotonic() + timeout
    started: set[int] = set()
    while time.monotonic() < deadline:
        try:
            study_id = storage.get_study_id_from_name(study_name)
        except KeyError:
            time.sleep(0.2)
            continue
        running = []
        for trial in storage.get_all_trials(study_id, deepcopy=False):
            pid = int(str(trial.user_attrs.get("mmbench.worker", ":0")).rpartition(":")[2] or 0)
            started.add(pid)
            if pid in workers and trial.state == TrialState.RUNNING and trial.user_attrs.get("mlflow_run_id"):
                running.append((workers[pid], trial.number))
        if running and started >= set(workers):
            return running[0]
        for worker in workers.values():
            assert worker.poll() is None, worker.communicate()[1][-3000:]
        time.sleep(0.05)
    raise AssertionError("the workers did not all start a trial in time")


def test_a_configuration_whose_workers_keep_dying_is_retried_at_most_max_retry_times():
    from optuna.trial import create_trial

    from mmbench.search.storage import MAX_RETRY, StaleTrialHandler

    handler = StaleTrialHandler()
    for history, (requeue, exhausted) in (([], (True, False)), (list(range(MAX_RETRY - 1)), (True, False)),
                                          (list(range(MAX_RETRY)), (False, True))):
        trial = create_trial(state=optuna.trial.TrialState.FAIL, system_attrs={"retry_history": history},
                             user_attrs={"mmbench.worker": "gpu7:123"})
        got_requeue, got_exhausted, reason = handler.outcome(trial)
        assert (got_requeue, got_exhausted) == (requeue, exhausted), history
        assert reason.startswith("interrupted: worker gpu7:123 sent no heartbeat")
    assert reason.endswith(f"not queued again after {MAX_RETRY} retries")
    handler.bind(tracker=None, requeue=False)  # grid search: its sampler proposes the point again
    assert handler.outcome(create_trial(state=optuna.trial.TrialState.FAIL))[:2] == (False, False)


# -- SIGINT / SIGTERM -----------------------------------------------------------------------------


def test_sigint_leaves_a_killed_run_and_resume_continues(tmp_path, stores, mlflow_server: MlflowServer):
    task = write_task(tmp_path, "fault-sigint", n_samples=240, epochs=60, patience=60)
    command = ["search", str(task), "--n-trials", "2", "--pruner", "none", "--sampler", "random", "--device", "cpu",
               "--quiet", "--no-plots", "--storage", stores["storage"], "--tracking-uri", mlflow_server.url]
    first = start_cli(command)
    database = stores["storage"].removeprefix("sqlite:///")
    deadline = time.monotonic() + 300
    while not _has_reported_epoch(database):
        assert first.poll() is None, first.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "no epoch was reported in time"
        time.sleep(0.05)
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err[-3000:]
    assert "SIGINT received" in err and "stopped by SIGINT after epoch" in err
    assert "Traceback" not in err, err[-3000:]

    study = optuna.load_study(study_name="fault-sigint", storage=stores["storage"])
    interrupted = study.trials[0]
    assert interrupted.state.name == "FAIL" and interrupted.user_attrs["mmbench.interrupted"] is True
    epochs_done = len(interrupted.intermediate_values)
    assert 1 <= epochs_done < 60
    parents, runs = study_runs(mlflow_server.url, "fault-sigint", "fault-sigint")
    assert parents[0].info.status == "KILLED"
    (run,) = runs
    assert run.info.status == "KILLED" and run.data.tags["mmbench.state"] == "KILLED"
    assert "stopped by SIGINT" in run.data.tags["mmbench.reason"]
    from mmbench.tracking.tracker import Tracker

    history = Tracker(mlflow_server.url).client.get_metric_history(run.info.run_id, "train_loss")
    assert len(history) == epochs_done  # the interrupted epoch's report reached MLflow

    resumed = start_cli(command)
    _, err = resumed.communicate(timeout=400)
    assert resumed.returncode == 0, err[-3000:]
    study = optuna.load_study(study_name="fault-sigint", storage=stores["storage"])
    from mmbench.search.resume import finished_count

    assert finished_count(study) == 2
    retry = next(t for t in study.trials if t.user_attrs.get("mmbench.retry_of") == 0)
    assert retry.state.name == "COMPLETE" and retry.params == interrupted.params
    parents, runs = study_runs(mlflow_server.url, "fault-sigint", "fault-sigint")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert_consistent(study, parents, runs)


def _has_reported_epoch(database: str) -> bool:
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=1) as connection:
            rows = connection.execute(
                "select count(*) from trial_intermediate_values v join trials t on v.trial_id = t.trial_id "
                "where t.state = 'RUNNING'").fetchone()
    except sqlite3.Error:
        return False
    return bool(rows and rows[0])


def test_sigterm_stops_at_the_next_epoch_boundary():
    from mmbench.infra.signals import StopRequested, check_stop, graceful_stop, stop_requested

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(StopRequested) as stopped, graceful_stop():
        check_stop("after epoch 1")  # nothing received yet: no-op
        os.kill(os.getpid(), signal.SIGTERM)  # the handler only records the request ...
        assert stop_requested() == signal.SIGTERM
        check_stop("after epoch 2")  # ... the epoch boundary raises
    assert stopped.value.exit_code == 143 and "stopped by SIGTERM after epoch 2" in str(stopped.value)
    assert isinstance(stopped.value, KeyboardInterrupt)
    assert signal.getsignal(signal.SIGTERM) is before and stop_requested() is None

    with pytest.raises(KeyboardInterrupt) as second, graceful_stop():
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGINT)  # a second Ctrl-C stops at once
    assert not isinstance(second.value, StopRequested)


# -- plugins that raise, return NaN, run out of memory, break the contract -----------------------


class _Broken(Encoder):
    modality = "embedding"
    space: dict = {}
    description = "test double"

    def __init__(self, info, **hp) -> None:
        super().__init__(info)
        self.linear = nn.Linear(int(info.dim), 4)
        self.out_dim = 4


class RaisingEncoder(_Broken):
    name = "embedding.raises"

    def forward(self, batch):
        raise RuntimeError("boom from a broken plugin")


class NanEncoder(_Broken):
    name = "embedding.nan"

    def forward(self, batch):
        return Encoded(pooled=self.linear(batch["values"]) * float("nan"))


class OomEncoder(_Broken):
    name = "embedding.oom"

    def forward(self, batch):
        if self.training:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB")
        return Encoded(pooled=self.linear(batch["values"]))


class WrongShapeEncoder(_Broken):
    name = "embedding.wrongshape"

    def forward(self, batch):
        return Encoded(pooled=self.linear(batch["values"])[:, :3])


class BrokenPlugin:
    @hookimpl
    def mmbench_encoders(self):
        return [RaisingEncoder, NanEncoder, OomEncoder, WrongShapeEncoder]


EXPECTED_REASONS = {
    "embedding.raises": "encoder 'embedding.raises' (modality 'x1') failed: RuntimeError: boom from a broken plugin",
    "embedding.nan": "training loss became nan at epoch 1",
    "embedding.oom": "out of memory (CUDA out of memory. Tried to allocate 8.00 GiB) with train.batch_size=",
    "embedding.wrongshape": "encoder 'embedding.wrongshape' (modality 'x1') returned pooled a float32 tensor of shape (2, 3)",
}


def test_broken_plugins_fail_their_trials_with_the_reason_and_the_search_goes_on(tmp_path, stores,
                                                                                 mlflow_server: MlflowServer):
    from mmbench.registry import load_registry
    from mmbench.search import SearchSettings, run_search
    from mmbench.tracking.tracker import Tracker

    registry = load_registry(extra_plugins=[("broken", BrokenPlugin())])
    names = [*EXPECTED_REASONS, "embedding.mlp"]
    task = tmp_path / "broken.yaml"
    task.write_text(write_task(tmp_path, "fault-plugins").read_text().replace("x1: [embedding.mlp]", f"x1: [{', '.join(names)}]"))
    study = optuna.create_study(study_name="fault-plugins", storage=stores["storage"], direction="maximize")
    for name in names:
        study.enqueue_trial({"encoder.x1": name})
    settings = SearchSettings.of(task=str(task), n_trials=len(names), pruner="none", device="cpu", plots=False, log_model=False,
                              storage=stores["storage"], tracking_uri=mlflow_server.url)
    outcome = run_search(settings, registry=registry)

    study = optuna.load_study(study_name="fault-plugins", storage=stores["storage"])
    by_encoder = {t.params["encoder.x1"]: t for t in study.trials}
    assert by_encoder["embedding.mlp"].state.name == "COMPLETE"  # the search went on
    assert outcome.n_complete == 1
    runs = {r.data.tags["mmbench.encoder.x1"]: r for r in Tracker(mlflow_server.url).trial_runs([outcome.experiment_id])}
    for name, reason in EXPECTED_REASONS.items():
        trial = by_encoder[name]
        assert trial.state.name == "FAIL", name
        assert reason in trial.user_attrs["reason"], trial.user_attrs["reason"]
        assert runs[name].info.status == "FAILED"
        assert reason in runs[name].data.tags["mmbench.reason"]


def test_a_fusion_with_the_wrong_number_of_logits_is_named():
    from mmbench.components import Fusion
    from mmbench.data.prepared import SplitTensors
    from mmbench.errors import TrialError
    from mmbench.train.guards import check_model_outputs
    from mmbench.train.model import MultimodalModel

    class ThreeLogits(Fusion):
        name = "three"
        space: dict = {}

        def forward(self, encoded):
            return torch.zeros(next(iter(encoded.values())).pooled.shape[0], 3)

    class Identity(nn.Module):
        name = "embedding.identity"
        out_dim = 4

        def forward(self, batch):
            return Encoded(pooled=batch["values"])

    model = MultimodalModel({"x1": Identity()}, ThreeLogits({"x1": 4}, 2))
    split = SplitTensors({"x1": {"values": torch.randn(5, 4)}}, torch.zeros(5, dtype=torch.long))
    with pytest.raises(TrialError, match=r"fusion 'three' returned a float32 tensor of shape \(2, 3\); expected .* \(2, 2\)"):
        check_model_outputs(model, split, n_classes=2)


# -- transient store errors ------------------------------------------------------------------------


class OperationalError(Exception):
    """Stands in for sqlalchemy.exc.OperationalError (matched by class name)."""


def test_transient_errors_are_retried_with_backoff_and_others_are_not(monkeypatch):
    from sqlalchemy.exc import OperationalError as SqlOperationalError

    from mmbench.infra import retry

    monkeypatch.setattr(retry.time, "sleep", lambda seconds: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise SqlOperationalError("UPDATE trials", {}, Exception("database is locked"))
        return "ok"

    assert retry.retry_call(flaky, what="test") == "ok" and len(calls) == 3

    def broken():
        calls.append(1)
        raise ValueError("not transient")

    calls.clear()
    with pytest.raises(ValueError):
        retry.retry_call(broken, what="test")
    assert len(calls) == 1

    def always_down():
        calls.append(1)
        raise OperationalError('connection to server at "db" failed: Connection refused')

    calls.clear()
    with pytest.raises(OperationalError):
        retry.retry_call(always_down, what="test", attempts=4)
    assert len(calls) == 4
    assert not retry.is_transient(OperationalError('password authentication failed for user "bob"'))


def test_storage_survives_a_dropped_connection(postgres: PostgresServer):
    """The server closes every connection (as on a restart or failover); the next calls still work."""
    from mmbench.search.storage import open_storage

    url = postgres.database("dropped")
    study = optuna.create_study(study_name="dropped", storage=open_storage(url, heartbeat=0), direction="maximize")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    postgres._admin("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = 'dropped' AND pid <> pg_backend_pid()")
    study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
    assert len(study.trials) == 4


def test_credentials_never_reach_error_messages_or_logs(postgres: PostgresServer, monkeypatch, caplog):
    """A wrong password, an unreachable database, an unreachable tracking server: no password shown."""
    from urllib.parse import quote

    from mmbench.infra import retry
    from mmbench.errors import ConfigError, TrackingError
    from mmbench.search.storage import open_storage
    from mmbench.tracking.tracker import Tracker

    monkeypatch.setattr(retry.time, "sleep", lambda seconds: None)
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    secret = "wr0ng-P@ss:word"
    messages = []
    for url in (f"postgresql://mmbench:{quote(secret, safe='')}@127.0.0.1:{postgres.port}/postgres",  # refused login
                f"postgresql://mmbench:{quote(secret, safe='')}@127.0.0.1:1/nothing"):  # no server: retried, then refused
        with pytest.raises(ConfigError) as error:
            open_storage(url, heartbeat=0)
        messages.append(str(error.value))
    assert "authentication failed" in messages[0] and "Connection refused" in messages[1]
    with pytest.raises(TrackingError) as error:
        Tracker(f"http://alice:{quote(secret, safe='')}@127.0.0.1:1").experiment_id("x")
    messages.append(str(error.value))
    assert any("retry 1 of" in record.getMessage() for record in caplog.records)  # transient errors were retried
    for text in [*messages, *(record.getMessage() for record in caplog.records)]:
        assert secret not in text and quote(secret, safe="") not in text and "wr0ng" not in text, text
    assert all(":***@" in message for message in messages), messages
    from mmbench.infra.secrets import redact_text

    # a password written with a raw '@' is hidden whole, not up to its first '@'
    assert redact_text("http://alice:p@ss@host:5000 and postgresql://u:pw@db/x") == \
        "http://alice:***@host:5000 and postgresql://u:***@db/x"
