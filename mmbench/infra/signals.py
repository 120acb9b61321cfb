"""Stopping a search cleanly on SIGINT (Ctrl-C) or SIGTERM (a scheduler, ``kill``, ``docker stop``).

The first signal does not interrupt whatever is running (an MLflow write, a database commit):
it asks the search to stop. The training loop checks at each epoch boundary
(:func:`check_stop`, called after the epoch's report reached MLflow and the pruner), raising
:class:`StopRequested`; the trial is then recorded as interrupted - its MLflow run KILLED with the
reason, its Optuna trial FAIL and flagged ``mmbench.interrupted`` so that the next
``mmbench search`` of the study runs the configuration again - and the study's parent run is
closed KILLED. A second Ctrl-C stops at once (a plain ``KeyboardInterrupt``).

Handlers are installed only in the main thread, only while :func:`graceful_stop` is active, and
the previous handlers are restored afterwards, so library users keep their own.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["StopRequested", "check_stop", "graceful_stop", "stop_callback", "stop_requested"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: list[int] = []  # the signal numbers received while graceful_stop is active


class StopRequested(KeyboardInterrupt):
    """Raised at an epoch boundary (or after the last trial) once SIGINT/SIGTERM was received.

    A :class:`KeyboardInterrupt`, so every layer that already treats Ctrl-C as "interrupted, not
    failed" (the objective, Optuna, the CLI) handles it the same way.

    Attributes:
        signum: the signal received.
        exit_code: ``128 + signum``, the shell's convention (130 for SIGINT, 143 for SIGTERM).
    """

    def __init__(self, signum: int, where: str = "") -> None:
        self.signum = signum
        self.exit_code = 128 + signum
        name = signal.Signals(signum).name
        at = f" {where}" if where else ""
        super().__init__(f"stopped by {name}{at}; the interrupted trial's run is KILLED and the study can be "
                         "resumed by running the same command again")


def stop_requested() -> int | None:
    """The signal number received since :func:`graceful_stop` started, or ``None``."""
    return _requested[0] if _requested else None


def check_stop(where: str = "") -> None:
    """Raise :class:`StopRequested` if a stop signal was received (call at safe points).

    Args:
        where: appended to the message, e.g. ``"after epoch 3"``.
    """
    if _requested:
        raise StopRequested(_requested[0], where)


def _handle(signum: int, frame: Any) -> None:
    if _requested and signum == signal.SIGINT:
        raise KeyboardInterrupt  # second Ctrl-C: the user does not want to wait
    if not _requested:
        _requested.append(signum)
        print(f"\n{signal.Signals(signum).name} received: stopping after the current epoch "
              "(Ctrl-C again to stop at once)", file=sys.stderr, flush=True)


@contextmanager
def graceful_stop() -> Iterator[None]:
    """Within the block, SIGINT/SIGTERM ask for a stop at the next epoch boundary.

    If a signal arrived but the block ended normally (between trials, or during the last
    one's bookkeeping), :class:`StopRequested` is raised on exit, so the caller still records
    the search as interrupted. Outside the main thread this does nothing (Python only lets the
    main thread install handlers).

    Example:
        >>> with graceful_stop():
        ...     check_stop("after epoch 1")  # no signal: returns
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in _SIGNALS}
    _requested.clear()
    for signum in _SIGNALS:
        signal.signal(signum, _handle)
    try:
        yield
        check_stop("between trials")
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested.clear()


def stop_callback(study: Any, trial: Any) -> None:
    """Optuna callback: start no new trial once a stop was requested."""
    if _requested:
        study.stop()
