"""Resuming a study: the budget counts finished trials, and trials of dead workers are closed.

A search killed mid-trial (SIGKILL, a crash, a closed laptop) leaves its trial RUNNING in the
Optuna storage and its MLflow run RUNNING. On the next ``mmbench search`` of the study, a
RUNNING trial whose worker ran on this machine and no longer exists is closed: the trial FAIL
with ``mmbench.interrupted``, its MLflow run KILLED with the reason, and its configuration is
queued again. Interrupted trials do not count against ``--n-trials``; finished ones (COMPLETE,
PRUNED, FAIL) are never rerun. Workers on other machines are left to Optuna's heartbeat.
"""

from __future__ import annotations

import os
import socket
from typing import TYPE_CHECKING

from mmbench.search.attrs import INTERRUPTED, RETRY_OF, RUN_ID, WORKER
from mmbench.tracking.tracker import TAG, Tracker

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial


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


def recover_interrupted(study: optuna.Study, tracker: Tracker, experiment_id: str, *, requeue: bool = True) -> list[int]:
    """Close the trials of dead local workers and queue interrupted configurations again.

    Args:
        study: the study being resumed.
        tracker: where the trials' MLflow runs live.
        experiment_id: the task's experiment.
        requeue: queue each interrupted trial's parameters as a new trial (off for grid search,
            whose sampler hands the interrupted point out again by itself).

    Returns:
        The numbers of the trials closed now.
    """
    from optuna.trial import TrialState

    closed: list[int] = []
    storage = study._storage
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = trial.user_attrs.get(WORKER)
        if not worker or not worker_is_dead(worker):
            continue
        reason = f"interrupted: worker {worker} stopped during the trial; its configuration is queued again"
        storage.set_trial_user_attr(trial._trial_id, INTERRUPTED, True)
        storage.set_trial_user_attr(trial._trial_id, "reason", reason)
        storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        run_id = trial.user_attrs.get(RUN_ID) or _find_run(tracker, experiment_id, study.study_name, trial.number)
        if run_id:
            tracker.finish(run_id, "KILLED", reason=reason)
        closed.append(trial.number)
    if requeue:
        trials = study.get_trials(deepcopy=False)
        retried = {t.user_attrs.get(RETRY_OF) for t in trials}
        for trial in trials:
            if trial.state == TrialState.FAIL and trial.user_attrs.get(INTERRUPTED) and trial.number not in retried:
                study.enqueue_trial(trial.params, user_attrs={RETRY_OF: trial.number})
    return closed


def _find_run(tracker: Tracker, experiment_id: str, study_name: str, number: int) -> str | None:
    """The trial's run by tags, for a worker killed before it stored the run id on the trial."""
    runs = tracker.client.search_runs(
        [experiment_id],
        filter_string=f"tags.`{TAG}study` = '{study_name}' and tags.`{TAG}trial` = '{number}' and tags.`{TAG}role` = 'trial'",
        max_results=1,
    )
    return runs[0].info.run_id if runs else None
