"""Scale-out: trials/hour of one study with 1 and with 2 ``mmbench search`` worker processes (ratio).

Each configuration is a fresh study of the same synthetic task, with the same total budget
(``--n-trials``), run by K worker processes started at once - exactly the commands of
docs/distributed.md, one process per core (``OMP_NUM_THREADS=1``). Optuna storage: a JournalStorage
file (``journal://``, no server needed), or with ``--servers`` a real PostgreSQL 15 and ``mlflow
server`` (tests/servers.py; needs ``/usr/lib/postgresql/15/bin``). MLflow: a SQLite file (or
the server).

Two figures per configuration:

* **search throughput**: finished trials / (last trial's end - first trial's start), i.e. the
  rate once the workers run, and the figure that scales with workers;
* **wall**: from launching the processes to the last exit, start-up (~10 s of imports per
  process on a small machine) included;
* **worker CPU seconds per trial**, each worker's fixed cost subtracted (imports, data, first-trial
  set-up; measured by a one-trial study run first): the cost of coordination. Equal for 1 and 2 workers means the
  workers only add throughput - the figure that stays meaningful on a machine whose cores are
  busy with other work, where the throughput ratio cannot reach 2.

The ideal ratio is ``min(2, free cores)``; on a shared 2-core machine it is lower (the figures
print the load average before the run).

    python benchmarks/workers.py [--n-trials 16] [--n-samples 4000] [--max-epochs 6] [--servers]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, quiet, temporary_stores

TASK = """\
name: bench-workers
description: synthetic two-modality task for the scale-out benchmark
data:
  provider: synthetic
  options: {{n_samples: {n_samples}, n_modalities: 2, dim: 16, mode: mixed, noise: 0.3}}
label: label
metric: accuracy
split: {{validation: 0.2, test: 0.2, seed: 0}}
search: {{max_epochs: {epochs}, patience: {epochs}, fusions: [early, late, gmu], encoders: {{x1: [embedding.mlp], x2: [embedding.mlp]}}}}
"""


def run_workers(n_workers: int, task: Path, study: str, storage: str, tracking: str, n_trials: int,
                logs: Path) -> tuple[float, float]:
    """Start ``n_workers`` searches of one study at once; (wall seconds until the last exits, their CPU seconds)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    started = time.perf_counter()
    workers = []
    for index in range(n_workers):
        command = [sys.executable, "-m", "mmbench.cli", "search", str(task), "--study", study, "--storage", storage,
                   "--tracking-uri", tracking, "--n-trials", str(n_trials), "--seed", str(index), "--pruner", "none",
                   "--device", "cpu", "--quiet", "--no-plots"]
        log = open(logs / f"{study}-{index}.log", "w")  # noqa: SIM115 - closed below
        workers.append((subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env), log))
    for process, log in workers:
        code = process.wait()
        log.close()
        if code != 0:
            raise SystemExit(f"worker failed ({code}); see {log.name}")
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def throughput(storage: str, study: str) -> tuple[int, float, int]:
    """(finished trials, seconds from the first trial's start to the last one's end, workers seen)."""
    import optuna

    from mmbench.search.storage import open_storage

    trials = [t for t in optuna.load_study(study_name=study, storage=open_storage(storage, heartbeat=0)).trials
              if t.state.is_finished() and t.datetime_start and t.datetime_complete]
    window = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return len(trials), window, len({t.user_attrs.get("mmbench.worker") for t in trials})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-trials", type=int, default=16, help="trials per study (shared by its workers)")
    parser.add_argument("--n-samples", type=int, default=4000)
    parser.add_argument("--max-epochs", type=int, default=6)
    parser.add_argument("--servers", action="store_true", help="PostgreSQL 15 + mlflow server instead of files")
    args = parser.parse_args()
    quiet()
    folder, stores = temporary_stores("workers")
    task = folder / "bench-workers.yaml"
    task.write_text(TASK.format(n_samples=args.n_samples, epochs=args.max_epochs))
    servers: list = []
    if args.servers:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
        from tests.servers import MlflowServer, PostgresServer

        postgres = PostgresServer.start()
        mlflow_server = MlflowServer.start(folder / "mlflow-server")
        servers = [postgres, mlflow_server]
        kind = "PostgreSQL 15 + mlflow server"
    else:
        kind = "JournalStorage file + MLflow SQLite file"
    load = os.getloadavg()[0]
    results = {}
    try:
        for n_workers in (0, 1, 2):  # 0: one worker, one trial: its fixed cost (imports, data, first-trial set-up)
            study = f"workers-{n_workers}"
            if args.servers:
                storage, tracking = servers[0].database(study.replace("-", "_")), servers[1].url
            else:
                storage, tracking = f"journal://{folder / (study + '.log')}", stores["tracking_uri"]
            wall, cpu = run_workers(max(1, n_workers), task, study, storage, tracking, args.n_trials if n_workers else 1,
                                    folder)
            finished, window, seen = throughput(storage, study)
            results[n_workers] = (finished, window, wall, seen, cpu)
    finally:
        for server in servers:
            server.stop()
    print(f"machine: {machine()}; load average before the run {load:.1f}")
    print(f"task: synthetic, {args.n_samples} rows, 2 modalities, {args.max_epochs} epochs/trial, no pruning; "
          f"{args.n_trials} trials per study; storage: {kind}")
    probe = results.pop(0)
    for n_workers, (finished, window, wall, seen, cpu) in results.items():
        print(f"{n_workers} worker(s): {finished} trials in {window:6.1f} s of search ({seen} worker(s) ran trials) "
              f"= {finished / window * 3600:7.0f} trials/hour; wall incl. start-up {wall:6.1f} s "
              f"= {finished / wall * 3600:7.0f} trials/hour; worker CPU {cpu:6.1f} s = {cpu / finished:5.2f} s/trial")
    one, two = (results[k][0] / results[k][1] for k in (1, 2))
    one_wall, two_wall = (results[k][0] / results[k][2] for k in (1, 2))
    print(f"ratio  2 workers / 1 worker = {two / one:.2f}x search throughput, {two_wall / one_wall:.2f}x wall "
          f"(ideal: {min(2, os.cpu_count() or 1)}x with {os.cpu_count()} cores)")
    # C(1 trial) = F + t1 and C(N trials) = F + N t1 give the per-trial cost t1 and a worker's fixed cost F
    cpu_one = (results[1][4] - probe[4]) / (results[1][0] - probe[0])
    fixed = probe[4] - cpu_one
    cpu_two = (results[2][4] - 2 * fixed) / results[2][0]
    print(f"fixed cost of one worker (imports, data, first-trial set-up): {fixed:.1f} CPU s; CPU per trial without it: "
          f"1 worker {cpu_one:.2f} s, 2 workers {cpu_two:.2f} s")
    print(f"ratio  CPU per trial 2 workers / 1 worker = {cpu_two / cpu_one:.2f}x (1.00x = no coordination cost: with a "
          "free core per worker, throughput scales with the workers)")


if __name__ == "__main__":
    main()
