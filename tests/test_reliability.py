"""Reliability and security under real faults (issue 20): secrets, unreachable servers, recovery races, resumes, ties."""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch
from torch import nn

from mmbench import Encoded, Encoder, hookimpl
from mmbench.infra.databases import with_driver
from tests.servers import PostgresServer, free_port, start_cli
from tests.test_distributed import write_task


def _dead_local_worker() -> str:
    """``host:pid`` of a process of this machine that has exited."""
    process = subprocess.Popen(["true"])
    process.wait()
    return f"{socket.gethostname()}:{process.pid}"


# -- 1. secrets ----------------------------------------------------------------------------------


def _files_holding(root: Path, secrets: list[str]) -> list[str]:
    found = []
    for path in root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [f"{path}: {s}" for s in secrets if s.encode() in data]
    return found


@pytest.mark.parametrize("form", ["slash", "space", "query"])
def test_storage_password_in_any_sqlalchemy_form_appears_nowhere(tmp_path, postgres: PostgresServer, form):
    from urllib.parse import quote

    password = {"slash": "ab/cd-s3cret-A1", "space": "ab cd-s3cret-B2", "query": "qs-s3cret-C3"}[form]
    role = f"mm_{form}"
    postgres._admin(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
    postgres._admin(f"CREATE DATABASE db_{form} OWNER {role}")
    base = f"127.0.0.1:{postgres.port}/db_{form}"
    storage = f"postgresql://{role}@{base}?password={password}" if form == "query" else f"postgresql://{role}:{password}@{base}"
    secrets = [password, quote(password, safe=""), "s3cret"]
    task = write_task(tmp_path, f"secret-{form}")
    worker = start_cli(["search", str(task), "--storage", storage, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                        "--n-trials", "1", "--device", "cpu", "--no-plots"])
    out, err = worker.communicate(timeout=240)
    assert worker.returncode == 0, err[-3000:]
    wrong = storage.replace(password, "wr/ong-s3cret-D4")  # a wrong password holding '/': retried, then refused
    failing = start_cli(["search", str(task), "--storage", wrong, "--tracking-uri", f"sqlite:///{tmp_path / 'mlflow.db'}",
                         "--n-trials", "1", "--device", "cpu"])
    _, failing_err = failing.communicate(timeout=240)
    assert failing.returncode == 2 and "Traceback" not in failing_err, failing_err[-3000:]
    assert "***" in failing_err

    # every param, tag and artifact of the MLflow store, every log line and message of both commands
    assert not _files_holding(tmp_path, [*secrets, "wr/ong", "wr%2Fong"])
    study = optuna.load_study(study_name=f"secret-{form}", storage=with_driver(storage))
    attrs = repr([study.user_attrs, study._storage.get_study_system_attrs(study._study_id),
                  [(t.user_attrs, t.system_attrs) for t in study.trials]])
    assert not [s for s in secrets if s in attrs]


def test_redaction_covers_every_form_sqlalchemy_accepts():
    from mmbench.infra.secrets import redact_text, redact_url

    assert redact_url("postgresql://mm2:ab/cd-secret@host/db") == "postgresql://mm2:***@host/db"
    assert redact_url("postgresql://mm3:ab cd-secret@host/db") == "postgresql://mm3:***@host/db"
    assert redact_url("postgresql://user@host/db?password=secret&sslmode=require") == \
        "postgresql://user@host/db?password=***&sslmode=require"
    assert redact_url("http://alice:p@ss@host:5000") == "http://alice:***@host:5000"
    assert redact_url("sqlite:///optuna.db") == "sqlite:///optuna.db"
    url = "postgresql://u:ab/cd-secret@h/db"
    assert redact_text(f"FATAL: password ab/cd-secret rejected for {url}", url) == \
        "FATAL: password *** rejected for postgresql://u:***@h/db"


# -- 2. unreachable tracking server, postgresql:// tracking URI ---------------------------------


def _clean_env() -> dict[str, str]:
    """This environment without MLflow's HTTP settings: mmbench's own limits apply."""
    return {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_HTTP_REQUEST")}


@pytest.mark.parametrize("command", ["search", "leaderboard"])
def test_an_unreachable_tracking_server_is_a_one_line_error_not_a_hang(tmp_path, command):
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    args = ["search", str(write_task(tmp_path, "unreachable")), "--n-trials", "1", "--device", "cpu"] \
        if command == "search" else ["leaderboard"]
    result = subprocess.run([sys.executable, "-m", "mmbench.cli", *args, "--tracking-uri", url], capture_output=True,
                            text=True, env=_clean_env(), timeout=120)  # mmbench's bound is ~30 s; MLflow's own was minutes
    assert result.returncode == 2, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "--tracking-uri" in lines[0] and "Traceback" not in result.stderr, result.stderr[-3000:]


def test_a_plain_postgresql_tracking_uri_uses_the_installed_driver(postgres: PostgresServer):
    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(postgres.database("tracking_plain"))  # plain postgresql://: psycopg 3 is not installed
    assert tracker.experiment_id("plain-task")


# -- 3. every RUNNING trial is recoverable ---------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres", "journal"])
def storage_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'optuna.db'}"
    if request.param == "journal":
        return f"journal:///{tmp_path / 'study.log'}"
    return request.getfixturevalue("postgres").database(f"recover_{os.getpid()}_{len(os.listdir(tmp_path))}")


def _running(storage, study_id: int, params: dict, *, user_attrs: dict, started: datetime) -> int:
    from optuna.distributions import FloatDistribution
    from optuna.trial import FrozenTrial, TrialState

    template = FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=started, datetime_complete=None,
                           params=params, distributions={k: FloatDistribution(0, 1) for k in params},
                           user_attrs=user_attrs, system_attrs={}, intermediate_values={}, trial_id=-1)
    return storage.create_new_trial(study_id, template)


def test_no_running_trial_survives_a_restart(tmp_path, storage_url, stores):
    """A dead local worker's trial, and one killed before it named its worker, are both closed and queued once."""
    from mmbench.search.attrs import INTERRUPTED, RETRY_OF, WORKER
    from mmbench.search.resume import recover_interrupted, worker_id
    from mmbench.search.storage import open_storage
    from mmbench.tracking.tracker import Tracker

    storage = open_storage(storage_url, heartbeat=0)
    study = optuna.create_study(study_name="recover", storage=storage, direction="maximize")
    fresh = study.ask()  # made by mmbench's storage: its owner is written with it
    assert study._storage.get_trial(fresh._trial_id).user_attrs[WORKER] == worker_id()
    study.tell(fresh, 0.5)
    long_ago = datetime.now() - timedelta(minutes=10)
    dead = _running(storage, study._study_id, {"x": 0.1}, user_attrs={WORKER: _dead_local_worker()}, started=long_ago)
    ownerless = _running(storage, study._study_id, {"x": 0.2}, user_attrs={}, started=long_ago)
    just_started = _running(storage, study._study_id, {"x": 0.3}, user_attrs={}, started=datetime.now())

    tracker = Tracker(stores["tracking_uri"])
    closed = recover_interrupted(study, tracker, tracker.experiment_id("recover"))
    trials = {t._trial_id: t for t in study.get_trials()}
    assert sorted(closed) == sorted(trials[i].number for i in (dead, ownerless))
    for trial_id in (dead, ownerless):
        assert trials[trial_id].state.name == "FAIL" and trials[trial_id].user_attrs[INTERRUPTED]
    assert trials[just_started].state.name == "RUNNING"  # within the grace period: maybe alive
    retries = [t.user_attrs.get(RETRY_OF) for t in trials.values() if t.state.name == "WAITING"]
    assert sorted(retries) == sorted(trials[i].number for i in (dead, ownerless))
    assert recover_interrupted(study, tracker, tracker.experiment_id("recover")) == []  # closed once


# -- 4. workers that start together -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["journal", "postgres"])
def test_two_simultaneous_workers_requeue_an_interrupted_trial_once(tmp_path, kind, request):
    """Two real processes recover the same dead trial, on a new SQLite MLflow file: one retry, both succeed."""
    from mmbench.search.attrs import RETRY_OF, WORKER
    from mmbench.search.storage import open_storage
    from tests.test_distributed import start_worker

    storage_url = (f"journal:///{tmp_path / 'study.log'}" if kind == "journal"
                   else request.getfixturevalue("postgres").database(f"race_{kind}"))
    task = write_task(tmp_path, f"race-{kind}")
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"  # new: both workers create MLflow's tables at once
    first = start_worker(task, "race", storage_url, tracking, seed=0, n_trials=1)
    assert first.wait(240) == 0, first.output()[1][-3000:]
    study = optuna.load_study(study_name="race", storage=open_storage(storage_url, heartbeat=0))
    done = study.trials[0]
    orphan = _running(study._storage, study._study_id, {}, user_attrs={WORKER: _dead_local_worker()},
                      started=datetime.now() - timedelta(minutes=5))
    # a template without distributions: give it the finished trial's parameters instead
    for name, value in done.params.items():
        study._storage.set_trial_param(orphan, name, done.distributions[name].to_internal_repr(value), done.distributions[name])
    (tmp_path / "mlflow.db").unlink()
    workers = [start_worker(task, "race", storage_url, tracking, seed=seed, n_trials=3) for seed in (1, 2)]
    for worker in workers:
        assert worker.wait(240) == 0, worker.output()[1][-3000:]
    study = optuna.load_study(study_name="race", storage=open_storage(storage_url, heartbeat=0))
    number = study._storage.get_trial(orphan).number
    assert [t.user_attrs.get(RETRY_OF) for t in study.trials].count(number) == 1
    assert not [t for t in study.trials if t.state.name == "RUNNING"]


# -- 5. resumes sample new points ---------------------------------------------------------------


def test_a_resumed_study_samples_no_configuration_twice(tiny_task, search_settings, stores):
    from mmbench.search.study import run_search

    task = tiny_task("resumed")
    for resume in range(4):  # the first run, then three resumes of the same command
        run_search(search_settings(task, n_trials=resume + 1, seed=3, pruner="none", log_model=False))
    study = optuna.load_study(study_name="resumed", storage=stores["storage"])
    configs = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(configs) == 4 and len(set(configs)) == 4, configs


# -- 6 and 9. the leaderboard: one data version, one tie-break ----------------------------------


def _tied_run(tracker, experiment_id: str, parent: str, *, trial: int, val: float, test: float, fingerprint: str,
              combination: str) -> str:
    tags = {"mmbench.task": "lb", "mmbench.trial": str(trial), "mmbench.fingerprint": fingerprint,
            "mmbench.combination": combination, "mmbench.fusion": combination.split(" ")[0], "mmbench.metric": "accuracy"}
    run_id = tracker.start_trial(experiment_id, parent, run_name=f"trial {trial}", tags=tags,
                                 params={"seed": trial, "lr": trial})
    tracker.log_metrics(run_id, {"val_score": val, "test_score": test})
    tracker.finish(run_id, "COMPLETE")
    return run_id


def test_leaderboard_ranks_one_fingerprint_and_breaks_ties_like_the_study(stores):
    from mmbench.search.study import best_trial
    from mmbench.tracking.leaderboard import leaderboard
    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(stores["tracking_uri"])
    experiment = tracker.experiment_id("lb")
    parent = tracker.study_run(experiment, "lb", tags={}, params={})
    old = _tied_run(tracker, experiment, parent, trial=0, val=0.9, test=0.9, fingerprint="old-data", combination="late | a")
    first = _tied_run(tracker, experiment, parent, trial=1, val=0.3548, test=0.2602, fingerprint="new-data", combination="early | a")
    _tied_run(tracker, experiment, parent, trial=5, val=0.3548, test=0.2764, fingerprint="new-data", combination="early | b")

    notes: list[str] = []
    rows = leaderboard(tracker, task="lb", notes=notes)
    assert [r.run_id for r in rows][0] == first and old not in {r.run_id for r in rows}  # tie: the earlier trial
    assert len(notes) == 1 and "1 run(s) of other data fingerprints left out" in notes[0]
    assert old in {r.run_id for r in leaderboard(tracker, task="lb", all_fingerprints=True)}

    study = optuna.create_study(direction="maximize")  # the study's rule names the same (earlier) trial
    for value in (0.1, 0.3548, 0.2, 0.3548):
        study.add_trial(optuna.trial.create_trial(value=value))
    assert best_trial(study).number == 1


# -- 8. failed trials: one line, the traceback in the run ---------------------------------------


class CrashingEncoder(Encoder):
    """Passes the shape check (no grad), then raises an unexpected error in training (a plugin bug)."""

    name = "embedding.crash"
    modality = "embedding"
    space = {}

    def __init__(self, info, **_: object) -> None:
        super().__init__(info)
        self.out_dim = 4
        self.linear = nn.Linear(info.dim or 4, 4)

    def forward(self, batch) -> Encoded:
        if torch.is_grad_enabled():
            raise RuntimeError("plugin bug in forward")
        return Encoded(pooled=self.linear(batch["values"]))


class CrashingPlugin:
    @hookimpl
    def mmbench_encoders(self):
        return [CrashingEncoder]


@pytest.mark.parametrize("quiet", [True, False])
def test_a_failed_trial_is_one_line_and_its_traceback_is_in_the_run(tmp_path, stores, capfd, quiet):
    from mmbench.registry import load_registry
    from mmbench.search import SearchSettings, run_search
    from mmbench.search.progress import PlainReporter, QuietReporter
    from mmbench.tracking.tracker import Tracker

    registry = load_registry(extra_plugins=[("crashing", CrashingPlugin())])
    task = tmp_path / "crash.yaml"
    task.write_text(write_task(tmp_path, "crash").read_text().replace("x1: [embedding.mlp]", "x1: [embedding.crash]"))
    stream = io.StringIO()
    settings = SearchSettings.of(task=str(task), n_trials=1, pruner="none", device="cpu", plots=False, **stores)
    outcome = run_search(settings, registry=registry, reporter=QuietReporter() if quiet else PlainReporter(stream))
    captured = capfd.readouterr()
    assert "Traceback" not in captured.err and "plugin bug" not in captured.err, captured.err
    assert quiet or [line for line in stream.getvalue().splitlines() if "plugin bug" in line]
    assert "Traceback" not in stream.getvalue()
    tracker = Tracker(stores["tracking_uri"])
    (run,) = tracker.trial_runs([outcome.experiment_id])
    text = Path(tracker.client.download_artifacts(run.info.run_id, "traceback.txt", str(tmp_path))).read_text()
    assert "RuntimeError: plugin bug in forward" in text and "Traceback" in text


# -- 10. NaN in float media ---------------------------------------------------------------------


def test_nan_in_audio_is_a_data_error_naming_column_and_row():
    import datasets

    from mmbench.data.preprocess.base import default_preprocessor
    from mmbench.data.schema import ModalityInfo
    from mmbench.errors import DataError

    cells = [{"array": np.ones(100, dtype=np.float32).tolist(), "sampling_rate": 1000} for _ in range(3)]
    cells[2]["array"][10] = float("nan")
    split = datasets.Dataset.from_dict({"audio": cells})
    preprocessor = default_preprocessor(ModalityInfo(name="audio", kind="audio", columns=("audio",)))
    with pytest.raises(DataError, match=r"column 'audio', row 2: audio holds NaN or infinity"):
        preprocessor.fit(split)
        preprocessor.transform(split)
