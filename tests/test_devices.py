"""Device slots for concurrent trials: --device, --n-jobs and --trials-per-gpu."""

from __future__ import annotations

import threading
import time

import pytest

from mmbench.infra.devices import DevicePool, plan_slots
from mmbench.errors import ConfigError


def test_cpu_runs_n_jobs_trials_and_ignores_trials_per_gpu():
    assert plan_slots("auto", n_jobs=3, trials_per_gpu=4, cuda_count=0) == ["cpu"] * 3
    assert plan_slots("cpu", n_jobs=1, trials_per_gpu=2, cuda_count=2) == ["cpu"]


def test_trials_are_spread_over_every_gpu():
    assert plan_slots("cuda", n_jobs=1, trials_per_gpu=2, cuda_count=2) == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]
    assert plan_slots("auto", n_jobs=1, trials_per_gpu=1, cuda_count=3) == ["cuda:0", "cuda:1", "cuda:2"]


def test_a_named_gpu_takes_all_trials_and_n_jobs_can_exceed_the_shares():
    assert plan_slots("cuda:1", n_jobs=1, trials_per_gpu=3, cuda_count=2) == ["cuda:1"] * 3
    assert plan_slots("cuda", n_jobs=3, trials_per_gpu=1, cuda_count=2) == ["cuda:0", "cuda:1", "cuda:0"]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"requested": "cuda", "n_jobs": 1, "trials_per_gpu": 1, "cuda_count": 0}, "CUDA is not available"),
    ({"requested": "cpu", "n_jobs": 1, "trials_per_gpu": 0, "cuda_count": 0}, "--trials-per-gpu must be at least 1"),
    ({"requested": "cpu", "n_jobs": 0, "trials_per_gpu": 1, "cuda_count": 0}, "--n-jobs must be at least 1"),
])
def test_impossible_requests_are_clear_errors(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        plan_slots(**kwargs)


def test_a_slot_is_never_held_by_two_trials_at_once():
    pool = DevicePool(["cuda:0", "cuda:1"])
    holders: dict[str, int] = {"cuda:0": 0, "cuda:1": 0}
    most = {"cuda:0": 0, "cuda:1": 0}
    lock = threading.Lock()

    def trial() -> None:
        with pool.slot() as device:
            with lock:
                holders[device] += 1
                most[device] = max(most[device], holders[device])
            time.sleep(0.01)
            with lock:
                holders[device] -= 1

    threads = [threading.Thread(target=trial) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert pool.concurrency == 2
    assert most == {"cuda:0": 1, "cuda:1": 1}


def test_the_cli_rejects_a_bad_share(stores, capsys, monkeypatch):
    from mmbench.cli.app import main

    argv = ["mmbench", "search", "--trials-per-gpu", "0", "--storage", stores["storage"], "--tracking-uri", stores["tracking_uri"], "-q"]
    monkeypatch.setattr("sys.argv", argv)
    with pytest.raises(SystemExit) as exit_info:
        main()
    assert exit_info.value.code == 2
    assert "--trials-per-gpu must be at least 1" in capsys.readouterr().err
