"""``--batch-trials K``: ask the sampler for K trials at once and train those of one structure together.

Each asked trial runs the ordinary :class:`~mmbench.search.objective.Objective` path in its own
thread (suggestion, MLflow child run, pruning reports, predictions, hooks), so a member's record
is that of an unbatched trial. Only its ``fit`` call is different: a :class:`GroupTrainer` waits
until every trial of the group has reached training (or left), then trains them all through
:func:`mmbench.train.batched.fit_group` and hands each thread its own result. The run of a member
trained with others gets a ``batched_with`` tag (the trial numbers of its batch) and, when memory
ran out, ``batch_oom_splits``.

The bookkeeping is shared where that changes nothing recorded: a member's run writes its metrics,
params and tags in one ``log_batch`` when it ends (:meth:`~mmbench.tracking.tracker.Tracker.deferred`),
latency is timed once per model structure for the group (:func:`~mmbench.train.efficiency.shared_latency`),
and one thread sends the heartbeats of all the group's trials (RDB storages with heartbeats).
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from mmbench.errors import MmbenchError
from mmbench.infra.signals import stop_requested
from mmbench.search.attrs import RUN_ID
from mmbench.tracking.tracker import TAG

if TYPE_CHECKING:
    import optuna

    from mmbench.data.prepared import SplitTensors
    from mmbench.search.objective import Objective
    from mmbench.tracking.tracker import Tracker
    from mmbench.train.batched import MemberOutcome
    from mmbench.train.loop import FitResult, TrainSettings
    from mmbench.train.model import MultimodalModel

#: user attribute / MLflow tag (under ``mmbench.``) naming the trials a member was trained with
BATCHED_WITH = "batched_with"
#: how many times a member's group was halved because memory ran out
BATCH_OOM_SPLITS = "batch_oom_splits"


class GroupTrainer:
    """Rendezvous of one asked group: collects its trials' ``fit`` calls, trains them in one go.

    The last trial to arrive (or to leave without training, e.g. a failed build) trains the group
    in its own thread; the others wait for their outcome. Members of one group are batched when
    they share the data tensors and :func:`~mmbench.train.batched.batch_key`.
    """

    def __init__(self, numbers: list[int]) -> None:
        self._waiting_for = set(numbers)
        self._arrived: dict[int, tuple[Any, Mapping[str, SplitTensors], int]] = {}
        self._outcomes: dict[int, MemberOutcome | BaseException] = {}
        self._started = False
        self._condition = threading.Condition()

    def fit_for(self, trial: optuna.Trial, tracker: Tracker) -> Callable[..., FitResult]:
        """A stand-in for :func:`~mmbench.train.loop.fit` for ``trial``; it tags the trial and its run
        with how it was trained (:func:`_record_batch`) before handing back its result or error."""
        number = trial.number

        def fit(model: MultimodalModel, data: Mapping[str, SplitTensors], settings: TrainSettings, *, n_classes: int,
                on_epoch: Callable[[Any], None] | None = None) -> FitResult:
            from mmbench.train.batched import Member

            with self._condition:
                self._arrived[number] = (Member(model, settings, on_epoch), data, n_classes)
                train = self._claim()
            if train:
                self._train()
            with self._condition:
                self._condition.wait_for(lambda: number in self._outcomes)
                outcome = self._outcomes[number]
            if isinstance(outcome, BaseException):
                raise outcome
            _record_batch(tracker, trial, outcome)
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            return outcome.result

        return fit

    def leave(self, number: int) -> None:
        """Trial ``number`` is done (trained or failed before training): the group no longer waits for it."""
        with self._condition:
            self._waiting_for.discard(number)
            train = self._claim()
        if train:
            self._train()

    def _claim(self) -> bool:
        """True for the one caller that should train now: every trial still expected has arrived."""
        if self._started or not self._arrived or not set(self._arrived) >= self._waiting_for:
            return False
        self._started = True
        return True

    def _train(self) -> None:
        from mmbench.train.batched import fit_group

        numbers = sorted(self._arrived)
        by_data: dict[tuple, list[int]] = {}
        for number in numbers:
            by_data.setdefault(_data_key(self._arrived[number][1]), []).append(number)
        try:
            for group in by_data.values():
                members = [self._arrived[n][0] for n in group]
                _, data, n_classes = self._arrived[group[0]]
                for number, outcome in zip(group, fit_group(members, data, n_classes=n_classes)):
                    outcome.batched_with = [group[i] for i in outcome.batched_with]
                    self._deliver(number, outcome)
        except BaseException as error:  # a stop signal or a bug: every waiting trial gets it
            for number in numbers:
                if number not in self._outcomes:
                    self._deliver(number, error)
            raise

    def _deliver(self, number: int, outcome: MemberOutcome | BaseException) -> None:
        with self._condition:
            self._outcomes[number] = outcome
            self._condition.notify_all()


def _data_key(data: Mapping[str, SplitTensors]) -> tuple:
    """Same storage and shapes: the trials train on the very same tensors (the feature cache's)."""
    return tuple((split, modality, key, value.data_ptr(), tuple(value.shape))
                 for split, tensors in sorted(data.items())
                 for modality, fields in sorted(tensors.inputs.items())
                 for key, value in sorted(fields.items()))


def optimize_batched(study: optuna.Study, objective: Objective, *, batch_trials: int, n_trials: int | None,
                     timeout: float | None) -> None:
    """Ask ``batch_trials`` trials at a time until ``n_trials`` ran, ``timeout`` seconds passed or a stop signal."""
    import optuna

    started = time.monotonic()
    done = 0
    while n_trials is None or done < n_trials:
        if stop_requested() or (timeout is not None and time.monotonic() - started >= timeout):
            return
        size = batch_trials if n_trials is None else min(batch_trials, n_trials - done)
        with warnings.catch_warnings():  # Optuna warns that heartbeats are for optimize(): run_group sends them
            warnings.simplefilter("ignore", UserWarning)
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # fail_stale_trials, deliberately
            if _heartbeat_interval(study):  # as optimize() does before each trial: settle dead workers' trials
                optuna.storages.fail_stale_trials(study)
            trials = [study.ask() for _ in range(size)]
        run_group(study, objective, trials)
        done += size


def run_group(study: optuna.Study, objective: Objective, trials: list[optuna.Trial]) -> None:
    """Run asked trials, one thread each, their training shared; tell the study each outcome."""
    trainer = GroupTrainer([t.number for t in trials])
    interrupted: list[BaseException] = []
    running = {t.number: t._trial_id for t in trials}  # the trials still to be told, for the heartbeats
    latency: dict = {}  # one latency measurement per model structure for the whole group
    tracker = objective.context.tracker
    with objective.context.devices.slot() as device, _heartbeats(study, running):
        objective.trainers.update({t.number: trainer.fit_for(t, tracker) for t in trials})
        threads = [threading.Thread(target=_run_member, args=(study, objective, trainer, t, device, interrupted, running, latency),
                                    name=f"mmbench-trial-{t.number}") for t in trials]
        try:
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        finally:
            for t in trials:
                objective.trainers.pop(t.number, None)
    if interrupted:
        raise interrupted[0]


def _run_member(study: optuna.Study, objective: Objective, trainer: GroupTrainer, trial: optuna.Trial, device: str,
                interrupted: list[BaseException], running: dict[int, int], latency: dict) -> None:
    import optuna
    from optuna.trial import TrialState

    from mmbench.train.efficiency import shared_latency

    try:
        # the run's metrics, params and tags go to MLflow in one log_batch when it ends
        with objective.context.tracker.deferred(), shared_latency(latency):
            values = objective._run(trial, device)
    except optuna.TrialPruned:
        study.tell(trial, state=TrialState.PRUNED)
    except Exception:  # noqa: BLE001 - recorded FAIL by the objective; the search goes on
        study.tell(trial, state=TrialState.FAIL)
    except BaseException as error:  # a stop signal: the trial was recorded KILLED
        study.tell(trial, state=TrialState.FAIL)
        interrupted.append(error)
    else:
        study.tell(trial, values)
    finally:
        running.pop(trial.number, None)
        trainer.leave(trial.number)


def _heartbeat_interval(study: optuna.Study) -> int | None:
    """Seconds between heartbeats of the study's storage (RDB storages with ``heartbeat_interval``), else ``None``."""
    getter = getattr(study._storage, "get_heartbeat_interval", None)
    return getter() if getter is not None else None


@contextlib.contextmanager
def _heartbeats(study: optuna.Study, running: Mapping[int, int]) -> Iterator[None]:
    """Heartbeats for asked trials, as ``optimize()`` sends for its own: one thread beats for every trial
    of the group not yet told, so the trials of a worker that dies mid-group go stale and are settled
    (:func:`optuna.storages.fail_stale_trials`, mmbench's stale-trial handler) instead of staying RUNNING."""
    interval = _heartbeat_interval(study)
    if not interval:
        yield
        return
    storage, stop = study._storage, threading.Event()

    def beat() -> None:
        while True:
            for trial_id in list(running.values()):
                try:
                    storage.record_heartbeat(trial_id)
                except Exception as error:  # noqa: BLE001 - a missed beat must not end the trials; the next may pass
                    logging.getLogger(__name__).warning("heartbeat of trial id %d not recorded: %s", trial_id, error)
            if stop.wait(interval):
                return

    thread = threading.Thread(target=beat, name="mmbench-batch-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _record_batch(tracker: Tracker, trial: optuna.Trial, outcome: MemberOutcome) -> None:
    """Tag a member's run and trial with the trials it was trained with (nothing for one trained alone)."""
    tags: dict[str, Any] = {}
    if len(outcome.batched_with) > 1:
        tags[BATCHED_WITH] = ",".join(map(str, outcome.batched_with))
    if outcome.oom_splits:
        tags[BATCH_OOM_SPLITS] = outcome.oom_splits
    for key, value in tags.items():
        trial.set_user_attr(key, value)
    run_id = trial.user_attrs.get(RUN_ID)
    if tags and run_id:
        try:
            tracker.set_tags(run_id, {f"{TAG}{k}": str(v) for k, v in tags.items()})
        except MmbenchError as error:  # the trial is still told: a missing tag must not lose its result
            logging.getLogger(__name__).warning("trial %d: batched_with tag not recorded: %s", trial.number, error)
