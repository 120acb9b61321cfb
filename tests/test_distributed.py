"""Many `mmbench search` workers on one study: PostgreSQL or a journal file, and a real `mlflow server`.

Workers are separate processes running ``mmbench search`` (:class:`tests.servers.Worker`: forked
from a server that has imported mmbench once, so that 4 workers do not cost 40 s of imports).
"""

from __future__ import annotations

from pathlib import Path

import optuna

from mmbench.search.storage import with_driver
from tests.servers import MlflowServer, PostgresServer, Worker, start_cli

N_WORKERS = 4
N_TRIALS = 40  # 4 workers x 10 trials each on average
ML_PASSWORD = "ml-s3cret-K4q"

TASK = """\
name: {name}
description: tiny synthetic task for the scale-out tests
data:
  provider: synthetic
  options: {{n_samples: {n_samples}, n_modalities: 2, dim: 4, mode: mixed, noise: 0.3}}
label: label
metric: accuracy
split: {{validation: 0.25, test: 0.25, seed: 0}}
search: {{max_epochs: {epochs}, patience: {patience}, fusions: [early, late], encoders: {{x1: [embedding.mlp], x2: [embedding.mlp]}}}}
"""


def write_task(folder: Path, name: str, *, n_samples: int = 96, epochs: int = 1, patience: int = 1) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(TASK.format(name=name, n_samples=n_samples, epochs=epochs, patience=patience))
    return path


def with_credentials(url: str, user: str = "alice", password: str = ML_PASSWORD) -> str:
    """``http://127.0.0.1:N`` -> ``http://alice:<password>@127.0.0.1:N`` (the server ignores them)."""
    scheme, rest = url.split("://", 1)
    return f"{scheme}://{user}:{password}@{rest}"


def start_worker(task: Path, study: str, storage: str, tracking: str, *, seed: int, n_trials: int,
                 extra: tuple[str, ...] = ()) -> Worker:
    """``mmbench search`` in a worker process of its own, as a user starts one per machine or GPU."""
    return start_cli(["search", str(task), "--study", study, "--storage", storage, "--tracking-uri", tracking,
                      "--n-trials", str(n_trials), "--seed", str(seed), "--device", "cpu", "--quiet", "--no-plots",
                      *extra])


def study_runs(tracking: str, task: str, study: str) -> tuple[list, list]:
    """(parent runs, trial runs) of a study in the tracking store."""
    from mmbench.tracking.tracker import Tracker

    tracker = Tracker(tracking)
    experiments = list(tracker.task_experiments(task))
    parents = tracker.client.search_runs(experiments, f"tags.`mmbench.role` = 'study' and tags.`mmbench.study` = '{study}'")
    trials = tracker.trial_runs(experiments, extra_filter=f"tags.`mmbench.study` = '{study}'")
    return parents, trials


def assert_consistent(study: optuna.Study, parents: list, runs: list) -> None:
    """No trial lost or duplicated; one parent; Optuna and MLflow agree trial by trial."""
    trials = [t for t in study.trials if t.state.name != "WAITING"]
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert not [t.number for t in trials if t.state.name == "RUNNING"], "a trial was left RUNNING"
    assert len(parents) == 1, [p.info.run_id for p in parents]
    run_numbers = [int(r.data.tags["mmbench.trial"]) for r in runs]
    assert len(run_numbers) == len(set(run_numbers)), "two MLflow runs for one trial"
    assert sorted(run_numbers) == sorted(numbers)
    by_number = {int(r.data.tags["mmbench.trial"]): r for r in runs}
    for trial in trials:
        run = by_number[trial.number]
        assert run.data.tags["mlflow.parentRunId"] == parents[0].info.run_id
        assert trial.user_attrs["mlflow_run_id"] == run.info.run_id
        if not trial.user_attrs.get("mmbench.interrupted"):
            assert run.data.tags["mmbench.state"] == trial.state.name
        if trial.state.name == "COMPLETE":
            assert abs(run.data.metrics["val_score"] - trial.value) < 1e-9


def test_four_workers_share_one_postgres_study(tmp_path, postgres: PostgresServer, mlflow_server: MlflowServer):
    task = write_task(tmp_path, "dist-four")
    storage = postgres.database("four_workers")
    tracking = with_credentials(mlflow_server.url)
    workers = [start_worker(task, "four", storage, tracking, seed=i, n_trials=N_TRIALS, extra=("--heartbeat", "2"))
               for i in range(N_WORKERS)]
    outputs = [w.communicate(timeout=400) for w in workers]
    for worker, (_, err) in zip(workers, outputs):
        assert worker.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]

    study = optuna.load_study(study_name="four", storage=with_driver(storage))
    from mmbench.search.resume import finished_count

    assert finished_count(study) >= N_TRIALS
    parents, runs = study_runs(mlflow_server.url, "dist-four", "four")
    assert_consistent(study, parents, runs)
    assert len(runs) == len(study.trials)
    # the work was shared: trials ran in more than one worker process
    assert len({r.data.tags["mmbench.worker"] for r in runs}) >= 2

    from mmbench.tracking.leaderboard import leaderboard
    from mmbench.tracking.tracker import Tracker

    rows = leaderboard(Tracker(mlflow_server.url), task="dist-four")
    best = max(t.value for t in study.trials if t.state.name == "COMPLETE")
    assert abs(rows[0].val_score - best) < 1e-9

    # credentials given in the storage and tracking URLs are never recorded
    for run in [*parents, *runs]:
        recorded = " ".join([*run.data.params.values(), *run.data.tags.values(), *run.data.params, *run.data.tags])
        assert ML_PASSWORD not in recorded and postgres_password(storage) not in recorded
    assert "***" in parents[0].data.params["search.storage"]
    for _, err in outputs:
        assert ML_PASSWORD not in err and postgres_password(storage) not in err


def postgres_password(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).password or "<none>"


def test_two_workers_share_one_journal_file_study(tmp_path, mlflow_server: MlflowServer):
    """The light alternative: Optuna's JournalStorage on a (shared) file system, no database server."""
    task = write_task(tmp_path, "dist-journal")
    log = tmp_path / "shared" / "study.log"
    log.parent.mkdir()
    workers = [start_worker(task, "journal", f"journal://{log}", mlflow_server.url, seed=i, n_trials=8)
               for i in range(2)]
    for worker in workers:
        _, err = worker.communicate(timeout=400)
        assert worker.returncode == 0, err[-3000:]
        assert "Traceback" not in err, err[-3000:]

    from optuna.storages.journal import JournalFileBackend, JournalStorage

    from mmbench.search.resume import finished_count

    study = optuna.load_study(study_name="journal", storage=JournalStorage(JournalFileBackend(str(log))))
    assert finished_count(study) >= 8
    parents, runs = study_runs(mlflow_server.url, "dist-journal", "journal")
    assert_consistent(study, parents, runs)
    assert len(runs) == len(study.trials)
    assert len({r.data.tags["mmbench.worker"] for r in runs}) == 2  # both processes ran trials of the one study
    assert parents[0].data.params["search.storage"] == f"journal://{log}"
