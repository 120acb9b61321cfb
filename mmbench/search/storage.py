"""Optuna storage for one or many workers: open it from a URL, survive dead workers and hiccups.

``--storage`` takes:

* ``sqlite:///optuna.db`` (the default: one machine), ``postgresql://user:pw@host/db`` or any
  other SQLAlchemy URL: an :class:`optuna.storages.RDBStorage` with **heartbeats**. Each running
  trial writes a heartbeat every ``heartbeat`` seconds; a trial silent for twice that long (its
  worker was SIGKILLed, its machine lost) is marked FAIL by the next worker that starts a trial,
  its MLflow run is closed KILLED with the reason, and its configuration is queued again.
* ``journal:///shared/fs/study.log`` or any path ending in ``.log``: Optuna's
  :class:`~optuna.storages.JournalStorage` on a file, the light alternative when the workers share
  a file system but no database. It has no heartbeats; trials of dead workers on the same machine
  are recovered when the search is started again (:mod:`mmbench.search.resume`).

Transient database errors (a dropped connection, SQLite's ``database is locked``) are retried with
backoff (:mod:`mmbench.infra.retry`). Credentials in the URL never reach a message: every message goes
through :mod:`mmbench.infra.secrets` (the URL parsed as SQLAlchemy parses it; every password form hidden).

The study's parent MLflow run is shared by every worker, however many start at once: the worker
whose ``create_study`` actually created the study (the database's unique study name is the
referee) creates the parent run and stores its id in the study's user attributes; the others wait
for it (:func:`shared_parent_run`).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError
from mmbench.search.attrs import INTERRUPTED, PARENT_RUN, RETRY_OF, RUN_ID, WORKER
from mmbench.infra.databases import tune_sqlite, with_driver
from mmbench.infra.retry import is_transient_or_creation_race, retry_call
from mmbench.infra.secrets import redact_text, redact_url, remember_secrets

if TYPE_CHECKING:
    import optuna
    from optuna.trial import FrozenTrial

    from mmbench.tracking.tracker import Tracker

logger = logging.getLogger(__name__)

#: Default seconds between heartbeats of a running trial (RDB storages); grace period is twice that.
DEFAULT_HEARTBEAT = 60
#: How often a stale trial's configuration is queued again before it is left failed.
MAX_RETRY = 3

JOURNAL_SCHEME = "journal://"

# storage methods that talk to the database: each goes through retry_call
_DATABASE_METHODS = (
    "create_new_study", "delete_study", "set_study_user_attr", "set_study_system_attr", "get_study_id_from_name",
    "get_study_name_from_id", "get_study_directions", "get_study_user_attrs", "get_study_system_attrs",
    "get_all_studies", "create_new_trial", "set_trial_param", "set_trial_state_values", "set_trial_intermediate_value",
    "set_trial_user_attr", "set_trial_system_attr", "get_trial_id_from_study_id_trial_number", "get_trial",
    "get_all_trials", "_get_trials", "get_best_trial", "record_heartbeat", "_get_stale_trial_ids",
)

_created_here: weakref.WeakSet[Any] = weakref.WeakSet()


def journal_path(url: str) -> Path | None:
    """The log file of a ``journal://`` URL or a bare ``*.log`` path, else ``None``.

    Example:
        >>> str(journal_path("journal:///shared/study.log"))
        '/shared/study.log'
        >>> journal_path("sqlite:///optuna.db") is None
        True
    """
    if url.startswith(JOURNAL_SCHEME):
        rest = url[len(JOURNAL_SCHEME):]
        if not rest:
            raise ConfigError(f"--storage {url}: a journal URL needs a file, e.g. journal:///shared/study.log")
        return Path(rest)
    if "://" not in url and url.endswith(".log"):
        return Path(url)
    return None


def open_storage(url: str, *, heartbeat: int | None = DEFAULT_HEARTBEAT) -> optuna.storages.BaseStorage:
    """Open the Optuna storage named by ``url`` (see the module docstring for the forms).

    Args:
        url: ``sqlite:///...``, ``postgresql://...`` (any SQLAlchemy URL), ``journal:///file.log``
            or a path ending in ``.log``.
        heartbeat: seconds between heartbeats of running trials (RDB storages); ``None`` or 0
            turns heartbeats off.

    Raises:
        ConfigError: an unusable URL, a missing driver or an unreachable database (after retries);
            the message shows the URL with its password redacted.
    """
    import optuna

    shown = redact_url(url)
    remember_secrets(url)  # a driver may echo the password in any later message: those are cleaned too
    journal = journal_path(url)
    if journal is not None:
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        if not journal.parent.is_dir():
            raise ConfigError(f"--storage {shown}: folder {journal.parent} does not exist")
        try:
            return _owned_trials(JournalStorage)(JournalFileBackend(str(journal)))
        except OSError as error:
            raise ConfigError(f"--storage {shown}: cannot open the journal file ({redact_text(str(error), url)})") from None
    if "://" not in url:
        raise ConfigError(f"--storage {shown}: expected a URL such as sqlite:///optuna.db, postgresql://user@host/db "
                          "or journal:///path/study.log")
    if heartbeat is not None and heartbeat < 0:
        raise ConfigError(f"--heartbeat must be 0 (off) or a positive number of seconds, got {heartbeat}")
    kwargs: dict[str, Any] = {}
    if heartbeat:
        from optuna.storages import RetryHeartbeatStaleTrialCallback  # noqa: F401 - fails early on an old optuna

        kwargs = {"heartbeat_interval": int(heartbeat), "grace_period": 2 * int(heartbeat),
                  "heartbeat_stale_trial_callback": StaleTrialHandler()}
    # a connection the server dropped while idle is replaced instead of failing the next call
    engine_kwargs = {} if url.startswith("sqlite") else {"pool_pre_ping": True}
    tune_sqlite(url)
    try:
        return retry_call(_owned_trials(_retrying_rdb_class()), with_driver(url), engine_kwargs=engine_kwargs, what=f"--storage {shown}",
                          retry_if=is_transient_or_creation_race, **kwargs)
    except ImportError as error:
        raise ConfigError(f"--storage {shown}: the database driver is missing ({redact_text(str(error), url)}); "
                          "for PostgreSQL: pip install 'mmbench[postgres]'") from None
    except (ValueError, optuna.exceptions.StorageInternalError) as error:
        raise ConfigError(f"--storage {shown}: {_first_line(error, url)}") from None
    except Exception as error:  # SQLAlchemy: bad URL, unreachable server, wrong password
        raise ConfigError(f"--storage {shown}: cannot open ({type(error).__name__}: {_first_line(error, url)})") from None


def create_or_load_study(url: str, *, study_name: str, directions: Sequence[str], sampler: Any, pruner: Any,
                         heartbeat: int | None = DEFAULT_HEARTBEAT) -> optuna.Study:
    """Create the study, or load it when it exists; remember whether this process created it.

    Creation is decided by the storage (unique study names), so among workers that start at the
    same moment exactly one is the creator (:func:`created_here`).

    Raises:
        ConfigError: see :func:`open_storage`.
    """
    import optuna

    storage = open_storage(url, heartbeat=heartbeat)
    try:
        study = optuna.create_study(storage=storage, study_name=study_name, directions=list(directions),
                                    sampler=sampler, pruner=pruner, load_if_exists=False)
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=study_name, storage=storage, sampler=sampler, pruner=pruner)
    except ConfigError:
        raise
    except Exception as error:
        raise ConfigError(f"--storage {redact_url(url)}: cannot use the study '{study_name}' "
                          f"({type(error).__name__}: {_first_line(error, url)})") from None
    _created_here.add(study)
    return study


def created_here(study: optuna.Study) -> bool:
    """True when :func:`create_or_load_study` created ``study`` in this process."""
    return study in _created_here


def shared_parent_run(study: optuna.Study, tracker: Tracker, create: Callable[[], str], *, wait: float = 30.0) -> str:
    """The study's one parent MLflow run, agreed on by every worker.

    The creator of the study calls ``create`` (which finds the run by tag on a resume, else
    creates it) and publishes the run id as the study user attribute :data:`PARENT_RUN`.
    Other workers read it, waiting up to ``wait`` seconds while the creator is still getting
    there. A study without the attribute that already has trials (made by an older mmbench, or
    whose creator died) or whose run is not in this tracking store falls back to ``create``.

    Args:
        study: the study.
        tracker: the tracking store.
        create: finds or creates the parent run, returns its id.
        wait: longest wait for the creator, in seconds.
    """
    if created_here(study):
        run_id = create()
        study.set_user_attr(PARENT_RUN, run_id)
        return run_id
    deadline = time.monotonic() + wait
    while True:
        run_id = study.user_attrs.get(PARENT_RUN)
        if run_id:
            if tracker.run_exists(run_id):
                tracker.reopen(run_id)
                return run_id
            break  # the study is tracked in another store: find or create this store's parent
        if time.monotonic() > deadline or study.get_trials(deepcopy=False):
            break
        time.sleep(0.2)
    run_id = create()
    if not study.user_attrs.get(PARENT_RUN):
        study.set_user_attr(PARENT_RUN, run_id)
    return run_id


class StaleTrialHandler:
    """Optuna's heartbeat callback: close a dead worker's trial in MLflow and queue it again.

    Optuna has already marked the trial FAIL when this runs (in the one worker whose state change
    won). Like Optuna's :class:`~optuna.storages.RetryHeartbeatStaleTrialCallback`, whose retry
    history it keeps, it queues the parameters as a new trial (user attribute :data:`RETRY_OF`);
    then the trial gets its reason, is flagged ``mmbench.interrupted`` (so it does not count
    against ``--n-trials``) and its MLflow run becomes KILLED with the reason. A configuration
    whose workers died :data:`MAX_RETRY` times is not queued again: it stays a counted failure
    and its run FAILED, since it probably kills its workers (e.g. the kernel's OOM killer).

    The tracker is bound before the first trial (:meth:`bind`): Optuna looks for stale trials
    only when a trial starts.
    """

    def __init__(self) -> None:
        self.tracker: Tracker | None = None
        self.requeue = True

    def bind(self, tracker: Tracker, *, requeue: bool = True) -> None:
        """Close MLflow runs with ``tracker``; ``requeue=False`` for samplers that re-propose by themselves (grid)."""
        self.tracker, self.requeue = tracker, requeue

    def outcome(self, trial: FrozenTrial) -> tuple[bool, bool, str]:
        """``(requeue, exhausted, reason)`` for a stale trial (the same answer in every worker)."""
        from optuna.storages import RetryHeartbeatStaleTrialCallback


        with _experimental_ok():
            history = RetryHeartbeatStaleTrialCallback.retry_history(trial)
        exhausted = self.requeue and len(history) >= MAX_RETRY  # the configuration itself keeps killing workers
        requeue = self.requeue and not exhausted
        reason = f"interrupted: worker {trial.user_attrs.get(WORKER, 'unknown')} sent no heartbeat (killed or unreachable); " + (
            "its configuration is queued again" if requeue
            else f"not queued again after {len(history)} retries" if exhausted
            else "the sampler proposes it again")
        return requeue, exhausted, reason

    def label(self, storage: optuna.storages.BaseStorage, trial_id: int) -> None:
        """Write the reason (and the interrupted flag) on a stale trial while it is still RUNNING.

        Optuna refuses attributes on a finished trial, and marks the trial FAIL before it calls
        this handler; so the storage calls this first (:func:`_retrying_rdb_class`). Several
        workers may label one trial at once: they write the same values.
        """
        import optuna


        try:
            trial = storage.get_trial(trial_id)
            _, exhausted, reason = self.outcome(trial)
            storage.set_trial_user_attr(trial_id, "reason", reason)
            if not exhausted:  # interrupted trials do not count against --n-trials; an exhausted one is a real failure
                storage.set_trial_user_attr(trial_id, INTERRUPTED, True)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # another worker failed it first, after labelling it

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        from optuna.storages import RetryHeartbeatStaleTrialCallback

        requeue, exhausted, reason = self.outcome(trial)
        if requeue:
            fresh = _copy_with_user_attrs(trial, {RETRY_OF: trial.number})
            with _experimental_ok():
                RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, fresh)
        run_id = trial.user_attrs.get(RUN_ID)
        if self.tracker is not None and run_id:
            try:
                self.tracker.finish(run_id, "FAIL" if exhausted else "KILLED", reason=reason)
            except Exception as error:  # the run stays RUNNING in MLflow; the trial itself is settled
                logger.warning("could not close the MLflow run of stale trial %d: %s", trial.number, error)


def bind_stale_handler(study: optuna.Study, tracker: Tracker, *, requeue: bool = True) -> None:
    """Give the study's heartbeat callback (if any) the tracker, so it can close dead workers' runs."""
    storage = study._storage
    getter = getattr(storage, "get_heartbeat_stale_trial_callback", None)
    handler = getter() if getter is not None else None
    if isinstance(handler, StaleTrialHandler):
        handler.bind(tracker, requeue=requeue)


@contextlib.contextmanager
def _experimental_ok() -> Iterator[None]:
    """Silence Optuna's "experimental" warning around the heartbeat retry API we rely on deliberately."""
    import warnings

    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        yield


def _copy_with_user_attrs(trial: FrozenTrial, user_attrs: dict[str, Any]) -> FrozenTrial:
    import copy

    fresh = copy.copy(trial)
    fresh.user_attrs = dict(user_attrs)  # not the dead trial's run id, worker or interrupted flag
    return fresh


@functools.cache
def _retrying_rdb_class() -> type:
    """An :class:`~optuna.storages.RDBStorage` whose database calls retry transient errors."""
    from optuna.storages import RDBStorage

    def retried(method: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(method)
        def call(self: Any, *args: Any, **kwargs: Any) -> Any:
            return retry_call(method, self, *args, what=f"optuna storage {method.__name__}", **kwargs)

        return call

    namespace = {name: retried(getattr(RDBStorage, name)) for name in _DATABASE_METHODS if hasattr(RDBStorage, name)}
    find_stale = namespace["_get_stale_trial_ids"]

    def _get_stale_trial_ids(self: Any, study_id: int) -> list[int]:
        # optuna.storages.fail_stale_trials calls this, then marks the trials FAIL: label them first
        stale = find_stale(self, study_id)
        handler = self.get_heartbeat_stale_trial_callback()
        if isinstance(handler, StaleTrialHandler):
            for trial_id in stale:
                handler.label(self, trial_id)
        return stale

    namespace["_get_stale_trial_ids"] = _get_stale_trial_ids
    namespace["__doc__"] = _retrying_rdb_class.__doc__
    return type("RetryingRDBStorage", (RDBStorage,), namespace)


@functools.cache
def _owned_trials(storage_class: type) -> type:
    """``storage_class`` whose trials carry their owner (:data:`WORKER`) from the moment they run.

    A new trial is created with the owner in its template (one write: a worker killed right after
    ``study.ask()`` leaves a trial :mod:`~mmbench.search.resume` can recover); a queued trial gets it
    right after the compare-and-set that popped it.
    """
    from mmbench.search.resume import worker_id

    def create_new_trial(self: Any, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        return storage_class.create_new_trial(self, study_id, template_trial or _owned_template(worker_id()))

    def set_trial_state_values(self: Any, trial_id: int, state: Any, values: Sequence[float] | None = None) -> bool:
        from optuna.trial import TrialState

        changed = storage_class.set_trial_state_values(self, trial_id, state, values)
        if changed and state == TrialState.RUNNING:
            self.set_trial_user_attr(trial_id, WORKER, worker_id())
        return changed

    namespace = {"create_new_trial": create_new_trial, "set_trial_state_values": set_trial_state_values,
                 "__doc__": _owned_trials.__doc__}
    if hasattr(storage_class, "_create_new_trial"):  # what Optuna's cache in front of an RDB storage calls

        def _create_new_trial(self: Any, study_id: int, template_trial: FrozenTrial | None = None) -> FrozenTrial:
            return storage_class._create_new_trial(self, study_id, template_trial or _owned_template(worker_id()))

        namespace["_create_new_trial"] = _create_new_trial
    return type(f"Owned{storage_class.__name__}", (storage_class,), namespace)


def _owned_template(worker: str) -> FrozenTrial:
    """A fresh RUNNING trial that names its worker (what Optuna creates without a template, plus the owner)."""
    from datetime import datetime

    from optuna.trial import FrozenTrial, TrialState

    return FrozenTrial(number=-1, state=TrialState.RUNNING, value=None, datetime_start=datetime.now(),
                       datetime_complete=None, params={}, distributions={}, user_attrs={WORKER: worker},
                       system_attrs={}, intermediate_values={}, trial_id=-1)


def _first_line(error: BaseException, url: str) -> str:
    lines = [line for line in str(error).splitlines() if line.strip()]
    return redact_text(lines[0] if lines else type(error).__name__, url)[:300]
