"""``--batch-trials K``: keep K trials in flight and train those of one structure together.

Each trial runs the ordinary :class:`~mmbench.search.objective.Objective` path in its own thread
(suggestion, MLflow child run, pruning reports, predictions, hooks), so a member's record is that
of an unbatched trial. Only its ``fit`` call is different: it hands the model to a
:class:`RollingTrainer`, whose one driver thread trains every member that arrived, pass by pass
(:class:`~mmbench.train.batched.BatchedTrainer`), and hands each thread its own result. As soon as a
trial is done another is asked, so its bookkeeping overlaps the others' training and it joins their
stack at the next pass (continuous batching: a stack never waits for its slowest member). The run
of a member trained with others gets a ``batched_with`` tag (the trial numbers it shared a pass
with) and, when memory ran out, ``batch_oom_splits``.

The bookkeeping is shared where that changes nothing recorded: a member's run writes its metrics,
params and tags in one ``log_batch`` when it ends (:meth:`~mmbench.tracking.tracker.Tracker.deferred`),
latency is timed once per model structure (:func:`~mmbench.train.efficiency.shared_latency`),
and one thread sends the heartbeats of all trials in flight (RDB storages with heartbeats).
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
#: how many times a member's stack size was halved because memory ran out
BATCH_OOM_SPLITS = "batch_oom_splits"


class RollingTrainer:
    """The driver of the trials in flight: collects their ``fit`` calls, trains them pass by pass.

    When no member is training, the driver waits until every trial in flight has reached training
    (or left, e.g. a failed build), so the first stack starts full; while members train, trials that
    arrive join at the next pass. A stop signal in the driver ends every member waiting on it.
    """

    def __init__(self) -> None:
        from mmbench.train.batched import BatchedTrainer

        self._trainer = BatchedTrainer()
        self._expected: set[int] = set()  # in flight, neither arrived nor left
        self._arrived: list[tuple[int, Any, Mapping[str, SplitTensors], int]] = []
        self._outcomes: dict[int, MemberOutcome | BaseException] = {}
        self._closed = False
        self._failure: BaseException | None = None
        self._condition = threading.Condition()
        self._driver = threading.Thread(target=self._drive, name="mmbench-batch-driver", daemon=True)
        self._driver.start()

    def expect(self, number: int) -> None:
        """Trial ``number`` is in flight: while nothing trains, the driver waits for it to arrive or leave."""
        with self._condition:
            self._expected.add(number)

    def fit_for(self, trial: optuna.Trial, tracker: Tracker) -> Callable[..., FitResult]:
        """A stand-in for :func:`~mmbench.train.loop.fit` for ``trial``; it tags the trial and its run
        with how it was trained (:func:`_record_batch`) before handing back its result or error."""
        number = trial.number

        def fit(model: MultimodalModel, data: Mapping[str, SplitTensors], settings: TrainSettings, *, n_classes: int,
                on_epoch: Callable[[Any], None] | None = None) -> FitResult:
            from mmbench.train.batched import Member

            with self._condition:
                if self._failure is not None:
                    raise self._failure
                self._expected.discard(number)
                self._arrived.append((number, Member(model, settings, on_epoch), data, n_classes))
                self._condition.notify_all()
                self._condition.wait_for(lambda: number in self._outcomes)
                outcome = self._outcomes.pop(number)
            if isinstance(outcome, BaseException):
                raise outcome
            _record_batch(tracker, trial, outcome)
            if outcome.error is not None:
                raise outcome.error
            assert outcome.result is not None
            return outcome.result

        return fit

    def leave(self, number: int) -> None:
        """Trial ``number`` is done (trained or failed before training): the driver no longer waits for it."""
        with self._condition:
            self._expected.discard(number)
            self._condition.notify_all()

    def close(self) -> None:
        """No more trials: the driver ends once the members it holds are done."""
        with self._condition:
            self._closed = True
            self._condition.notify_all()
        self._driver.join()

    def _ready(self) -> bool:
        """Something to train now: members in the trainer, or every trial in flight has arrived; or the end."""
        return self._trainer.busy or (bool(self._arrived) and not self._expected) or self._closed

    def _drive(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(self._ready)
                if self._closed and not self._arrived and not self._trainer.busy:
                    return
                arrived, self._arrived = self._arrived, []
            for number, member, data, n_classes in arrived:
                self._trainer.admit(number, member, data, n_classes)
            try:
                done = self._trainer.run_pass() if self._trainer.busy else []
            except BaseException as error:  # a stop signal or a bug: every member waiting gets it
                with self._condition:
                    self._failure = error
                    for number in self._trainer.abandon() + [n for n, *_ in self._arrived]:
                        self._outcomes[number] = error
                    self._arrived = []
                    self._condition.notify_all()
                return
            if done:
                with self._condition:
                    self._outcomes.update(done)
                    self._condition.notify_all()


def optimize_batched(study: optuna.Study, objective: Objective, *, batch_trials: int, n_trials: int | None,
                     timeout: float | None) -> None:
    """Keep ``batch_trials`` trials in flight until ``n_trials`` were asked, ``timeout`` seconds passed or a stop signal."""
    import optuna

    started = time.monotonic()
    asked = 0
    trainer = RollingTrainer()
    interrupted: list[BaseException] = []
    running: dict[int, int] = {}  # the trials still to be told, for the heartbeats
    threads: dict[int, threading.Thread] = {}
    finished = threading.Condition()
    latency: dict = {}  # one latency measurement per model structure for the whole search
    tracker = objective.context.tracker
    heartbeat = _heartbeat_interval(study)

    def more() -> bool:
        return not (interrupted or stop_requested() or (n_trials is not None and asked >= n_trials)
                    or (timeout is not None and time.monotonic() - started >= timeout))

    def run(trial: optuna.Trial) -> None:
        try:
            _run_member(study, objective, trainer, trial, device, interrupted, running, latency)
        finally:
            with finished:
                threads.pop(trial.number, None)
                objective.trainers.pop(trial.number, None)
                finished.notify_all()

    with objective.context.devices.slot() as device, _heartbeats(study, running):
        try:
            while True:
                with finished:
                    finished.wait_for(lambda: len(threads) < batch_trials or not more())
                    if not more():
                        break
                with warnings.catch_warnings():  # Optuna warns that heartbeats are for optimize(): _heartbeats sends them
                    warnings.simplefilter("ignore", UserWarning)
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # fail_stale_trials, deliberately
                    if heartbeat:  # as optimize() does before each trial: settle dead workers' trials
                        optuna.storages.fail_stale_trials(study)
                    trial = study.ask()
                if heartbeat:  # its first beat now, as optimize()'s trials get theirs when they start
                    study._storage.record_heartbeat(trial._trial_id)
                asked += 1
                running[trial.number] = trial._trial_id
                trainer.expect(trial.number)
                objective.trainers[trial.number] = trainer.fit_for(trial, tracker)
                thread = threading.Thread(target=run, args=(trial,), name=f"mmbench-trial-{trial.number}")
                with finished:
                    threads[trial.number] = thread
                thread.start()
        finally:
            with finished:
                finished.wait_for(lambda: not threads)
            trainer.close()
    if interrupted:
        raise interrupted[0]


def _run_member(study: optuna.Study, objective: Objective, trainer: RollingTrainer, trial: optuna.Trial, device: str,
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
