"""Optuna's log records, routed through the search's reporter instead of Optuna's stderr handler;
Optuna's and MLflow's info logs quieted (:func:`quiet_libraries`).

Optuna logs every failed trial as a warning with its full traceback. The search already reports
each finished trial in one line with its reason (:class:`~mmbench.search.progress.Reporter`) and
keeps the traceback in the trial's MLflow run (``traceback.txt``), so those records are dropped;
Optuna's other warnings become reporter notes, so ``--quiet`` silences them like everything else.
"""

from __future__ import annotations

import logging
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

_FAILED_TRIAL = re.compile(r"^Trial \d+ failed\b")


class _ReporterHandler(logging.Handler):
    def __init__(self, reporter: Any) -> None:
        super().__init__(level=logging.WARNING)
        self.reporter = reporter

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if _FAILED_TRIAL.match(message):
            return  # reported by the search in one line; the traceback is in the trial's run
        note = getattr(self.reporter, "note", None)
        if note is not None:
            note(f"optuna: {message.splitlines()[0] if message else record.levelname}")


@contextmanager
def route_optuna_logs(reporter: Any) -> Iterator[None]:
    """Within the block, Optuna's warnings go to ``reporter.note`` and failed-trial tracebacks nowhere."""
    import optuna

    handler = _ReporterHandler(reporter)
    optuna_logger = logging.getLogger("optuna")
    optuna.logging.disable_default_handler()
    optuna_logger.addHandler(handler)
    try:
        yield
    finally:
        optuna_logger.removeHandler(handler)
        optuna.logging.enable_default_handler()


def quiet_libraries() -> None:
    """Keep Optuna's and MLflow's info logs and experimental-feature warnings out of the user's way."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    for name in ("mlflow", "mlflow.store.db.utils", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
