"""Retry with exponential backoff for the transient errors of shared stores.

Many workers on one PostgreSQL database or one ``mlflow server`` meet errors that go away by
themselves: a dropped connection, a server restarting, SQLite's ``database is locked``, an
HTTP 503. Those are retried a few times with growing, jittered pauses; every other error (a
wrong password, a missing table, a bug) is raised at once, because waiting would not fix it.

Messages are passed through :func:`mmbench.infra.secrets.redact_text` before they are logged, so a
password in a storage or tracking URL never reaches a log line.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")

logger = logging.getLogger(__name__)

#: Attempts in all (the first try included) and the first pause; the pause doubles each time.
DEFAULT_ATTEMPTS = 5
DEFAULT_DELAY = 0.25
MAX_DELAY = 8.0

# Class names (anywhere in the exception's MRO) of errors that a later attempt can cure. Names,
# not classes, so that this module imports neither SQLAlchemy, requests nor MLflow.
_TRANSIENT_CLASSES = frozenset({
    "OperationalError",  # SQLAlchemy: connection lost, server restarting, database is locked
    "DisconnectionError",
    "ConnectionError",  # builtins and requests
    "ConnectTimeout",
    "ReadTimeout",
    "TimeoutError",
})
_TRANSIENT_CODES = frozenset({"TEMPORARILY_UNAVAILABLE", "RESOURCE_EXHAUSTED", "REQUEST_LIMIT_EXCEEDED"})
_TRANSIENT_TEXT = ("database is locked", "server closed the connection unexpectedly", "connection reset by peer",
                   "could not connect to server", "the database system is starting up", "deadlock detected",
                   "could not serialize access", "service unavailable", "too many requests")
# An OperationalError with one of these will fail the same way next time.
_PERMANENT_TEXT = ("authentication failed", "does not exist", "no password supplied", "permission denied",
                   "no such table", "unknown database", "invalid dsn", "unable to open database file")


def _chain(error: BaseException) -> list[BaseException]:
    """The error and its causes/contexts (storage layers wrap the driver's error)."""
    seen: list[BaseException] = []
    current: BaseException | None = error
    while current is not None and current not in seen and len(seen) < 10:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def is_transient(error: BaseException) -> bool:
    """True when retrying the same call later may succeed (see the module docstring).

    Example:
        >>> is_transient(ConnectionError("connection reset by peer"))
        True
        >>> is_transient(ValueError("bad value"))
        False
    """
    for link in _chain(error):
        text = str(link).lower()
        if any(marker in text for marker in _PERMANENT_TEXT):
            return False
        if getattr(link, "error_code", None) in _TRANSIENT_CODES:
            return True
        if any(cls.__name__ in _TRANSIENT_CLASSES for cls in type(link).__mro__):
            return True
        if any(marker in text for marker in _TRANSIENT_TEXT):
            return True
    return False


# Workers that start together on an empty store race to create its tables (Optuna's, MLflow's
# alembic migrations); the loser's error goes away once the winner is done.
_CREATION_RACE_TEXT = ("already exists", "duplicate key value violates unique constraint",
                       "online migration expected to match one row", "unique constraint failed: alembic_version")


def is_transient_or_creation_race(error: BaseException) -> bool:
    """:func:`is_transient`, or a lost race to create a new store's tables (retry: the winner finishes).

    Example:
        >>> is_transient_or_creation_race(RuntimeError("table studies already exists"))
        True
    """
    return is_transient(error) or any(marker in str(link).lower() for link in _chain(error) for marker in _CREATION_RACE_TEXT)


def retry_call(function: Callable[..., T], *args: Any, what: str = "call", attempts: int = DEFAULT_ATTEMPTS,
               delay: float = DEFAULT_DELAY, retry_if: Callable[[BaseException], bool] = is_transient,
               give_up_after: float | None = None, **kwargs: Any) -> T:
    """Call ``function(*args, **kwargs)``; retry transient errors with exponential backoff.

    Args:
        function: the call to make.
        what: a short description for the warning logged before each retry (no credentials).
        attempts: tries in all, the first included.
        delay: first pause in seconds; doubles each retry (capped at :data:`MAX_DELAY`), +-25% jitter
            so that workers that failed together do not retry together.
        retry_if: which errors to retry (default :func:`is_transient`).
        give_up_after: no retry starts once this many seconds have passed since the first try
            (bounds the wait on an unreachable server whose calls each time out).

    Returns:
        What ``function`` returned.

    Raises:
        Exception: the last error once attempts are spent, or any non-transient error at once.
    """
    from mmbench.infra.secrets import redact_text

    started = time.monotonic()
    for attempt in range(1, attempts + 1):
        try:
            return function(*args, **kwargs)
        except Exception as error:
            if attempt == attempts or not retry_if(error):
                raise
            pause = min(MAX_DELAY, delay * 2 ** (attempt - 1)) * random.uniform(0.75, 1.25)
            if give_up_after is not None and time.monotonic() - started + pause > give_up_after:
                raise
            logger.warning("%s failed (%s); retry %d of %d in %.1fs", what,
                           redact_text(str(error))[:300], attempt, attempts - 1, pause)
            time.sleep(pause)
    raise AssertionError("unreachable")  # pragma: no cover


class RetryingProxy:
    """Wraps an object so that each of its method calls goes through :func:`retry_call`.

    Used around :class:`mlflow.MlflowClient`: the tracker and the modules that use
    ``tracker.client`` directly keep calling the same methods. ``on_failure`` may turn the final
    error into another (e.g. a :class:`~mmbench.errors.TrackingError` with a redacted message).

    Args:
        target: the wrapped object.
        what: names the target in warnings (must not contain credentials).
        on_failure: maps the error that ended the retries to the error to raise, or returns
            ``None`` to re-raise it unchanged.
        give_up_after: seconds after which a call is not retried again (see :func:`retry_call`).
    """

    def __init__(self, target: Any, *, what: str,
                 on_failure: Callable[[Exception], Exception | None] | None = None,
                 give_up_after: float | None = None) -> None:
        self._target = target
        self._what = what
        self._on_failure = on_failure
        self._give_up_after = give_up_after

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if name.startswith("_") or not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return retry_call(value, *args, what=f"{self._what}: {name}", give_up_after=self._give_up_after, **kwargs)
            except Exception as error:
                replacement = self._on_failure(error) if self._on_failure else None
                if replacement is None:
                    raise
                raise replacement from None

        call.__name__ = name
        return call


def redacting_failure(url: str, label: str, error_type: type[Exception]) -> Callable[[Exception], Exception | None]:
    """An ``on_failure`` for :class:`RetryingProxy`: store errors become ``error_type`` without credentials.

    Converted: MLflow's own errors, transient errors whose retries are spent, and any error whose
    message contains the URL's password. Others (bugs) keep their type and traceback.

    Args:
        url: the store's URL (its password is scrubbed from messages).
        label: what the message starts with, e.g. ``"--tracking-uri"``.
        error_type: the exception to raise instead, e.g. :class:`~mmbench.errors.TrackingError`.
    """
    from mmbench.infra.secrets import redact_text, redact_url

    def convert(error: Exception) -> Exception | None:
        names = {cls.__name__ for link in _chain(error) for cls in type(link).__mro__}
        leaks = redact_text(str(error), url) != " ".join(str(error).split())  # a password (or a URL's userinfo) shows
        if "MlflowException" in names or is_transient(error) or leaks:
            lines = [line for line in str(error).splitlines() if line.strip()] or [type(error).__name__]
            return error_type(f"{label} {redact_url(url)}: {redact_text(lines[0], url)[:300]}")
        return None

    return convert

