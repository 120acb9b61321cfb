"""Resuming a study: the budget counts finished trials, trials of dead workers are closed, new points are sampled.

A search killed mid-trial (SIGKILL, a crash, a closed laptop) leaves its trial RUNNING in the
Optuna storage and its MLflow run RUNNING. On the next ``mmbench search`` of the study, a
RUNNING trial is closed when its worker ran on this machine and no longer exists, or when it
names no worker and started more than :data:`ORPHAN_GRACE` seconds ago (every trial gets its
owner within milliseconds of starting, see :mod:`mmbench.search.storage`): the trial FAIL with
``mmbench.interrupted``, its MLflow run KILLED with the reason, and its configuration is queued
again. Each closing is claimed once: the storage's state change RUNNING -> FAIL is a
compare-and-set (a row lock in a database, the order of the journal's log), and only the worker
whose change won queues the retry. A worker stopped by a signal queues its own interrupted trial
as it exits (:func:`requeue_own_interrupted`). Interrupted trials do not count against
``--n-trials``; finished ones (COMPLETE, PRUNED, FAIL) are never rerun. Workers on other
machines are left to Optuna's heartbeat.

Each process seeds its sampler from ``--seed`` and the number of trials the study already has
(:func:`process_seed`), so a resumed study samples new points instead of trial #0's again.
"""

from __future__ import annotations

import hashlib
import os
import socket
from datetime import datetime
from typing import TYPE_CHECKING

from mmbench.search.attrs import INTERRUPTED, RETRY_OF, RUN_ID, WORKER
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


#: Seconds after which a RUNNING trial that names no worker counts as dead.
ORPHAN_GRACE = 60.0


def worker_id() -> str:
    """``host:pid`` of this process, stored on its trials so a resume can tell dead workers."""
    return f"{socket.gethostname()}:{os.getpid()}"


def process_seed(seed: int, study: optuna.Study) -> int:
    """The sampler seed of this process: ``seed`` for a new study, else mixed with the study's trial count.

    Reproducible (the same command on the same study state samples the same points), and a
    resumed study does not repeat its first start-up samples.

    Example:
        >>> class Fresh:
        ...     def get_trials(self, deepcopy=False): return []
        >>> process_seed(7, Fresh())
        7
    """
    n_trials = len(study.get_trials(deepcopy=False))
    if not n_trials:
        return seed
    digest = hashlib.blake2b(f"{seed}:{n_trials}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big")


def finished_count(study: optuna.Study) -> int:
    """Trials that count against the budget: COMPLETE, PRUNED, and FAIL unless interrupted."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))
    return sum(1 for t in trials if not t.user_attrs.get(INTERRUPTED))


class StopAtBudget:
    """Optuna callback: stop the study once ``n_trials`` trials count as finished (all workers)."""

    def __init__(self, n_trials: int) -> None:
        self.n_trials = n_trials

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if finished_count(study) >= self.n_trials:
            study.stop()


def worker_is_dead(worker: str) -> bool:
    """True when ``host:pid`` names a process of this machine that no longer runs (or is a zombie)."""
    host, _, pid_text = worker.rpartition(":")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False


def recover_interrupted(study: optuna.Study, tracker: Tracker, experiment_id: str, *, requeue: bool = True,
                        grace: float = ORPHAN_GRACE) -> list[int]:
    """Close the trials of dead workers (local ones, and ownerless ones older than ``grace`` s); queue them again.

    Args:
        study: the study being resumed.
        tracker: where the trials' MLflow runs live.
        experiment_id: the task's experiment.
        requeue: queue each closed trial's parameters as a new trial (off for grid search,
            whose sampler hands the interrupted point out again by itself).
        grace: seconds after its start at which a RUNNING trial without an owner counts as dead.

    Returns:
        The numbers of the trials this worker closed (each is closed by exactly one worker).
    """
    from optuna.trial import TrialState

    closed: list[int] = []
    now = datetime.now()
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER)
        if worker and worker_is_dead(worker):
            reason = f"interrupted: worker {worker} stopped during the trial; its configuration is queued again"
        elif not worker and trial.datetime_start and (now - trial.datetime_start).total_seconds() > grace:
            reason = (f"interrupted: its worker died before recording itself (no owner after {grace:.0f} s); "
                      "its configuration is queued again")
        else:
            continue
        if not _claim(study, trial, reason):
            continue  # another worker closed it first
        run_id = trial.user_attrs.get(RUN_ID) or _find_run(tracker, experiment_id, study.study_name, trial.number)
        if run_id:
            tracker.finish(run_id, "KILLED", reason=reason)
        if requeue and trial.params:
            study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
        closed.append(trial.number)
    return closed


def requeue_own_interrupted(study: optuna.Study) -> list[int]:
    """Queue again the trials this process interrupted (Ctrl-C, SIGTERM), as it exits.

    Only this process labels its trials with its ``host:pid``, so no other worker queues them:
    each interrupted configuration is queued once.

    Returns:
        The numbers of the trials queued again.
    """
    from optuna.trial import TrialState

    me = worker_id()
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    mine = [t for t in trials if t.state == TrialState.FAIL and t.user_attrs.get(INTERRUPTED)
            and t.user_attrs.get(WORKER) == me and t.number not in retried and t.params]
    for trial in mine:
        study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
    return [t.number for t in mine]


def _claim(study: optuna.Study, trial: FrozenTrial, reason: str) -> bool:
    """Label the trial interrupted and set it FAIL; ``False`` when another worker finished it first.

    Every claimant writes the same labels (Optuna refuses them on a finished trial, so they come
    first); the state change is the storage's compare-and-set.
    """
    import optuna
    from optuna.trial import TrialState

    storage = study._storage
    try:
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        return bool(storage.set_trial_state_values(trial._trial_id, TrialState.FAIL))
    except optuna.exceptions.UpdateFinishedTrialError:
        return False


def _find_run(tracker: Tracker, experiment_id: str, study_name: str, number: int) -> str | None:
    """The trial's run by tags, for a worker killed before it stored the run id on the trial."""
    runs = tracker.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG}study` = '{study_name}' and tags.`{TAG}trial` = '{number}' and tags.`{TAG}role` = 'trial'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
