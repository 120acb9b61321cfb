"""Database URLs as SQLAlchemy needs them, and SQLite stores set up for many small commits.

Used for the Optuna ``--storage`` and for an MLflow ``--tracking-uri`` that is a database: a
plain ``postgresql://`` URL works for both (:func:`with_driver`), and an SQLite file is opened
in write-ahead-log mode (:func:`tune_sqlite`).
"""

from __future__ import annotations

import os
import threading

#: Real paths of the SQLite files :func:`tune_sqlite` was asked for.
_TUNED: set[str] = set()
_TUNED_LOCK = threading.Lock()


def with_driver(url: str) -> str:
    """Name the installed PostgreSQL driver in a plain ``postgresql://`` URL.

    SQLAlchemy 2.1 maps ``postgresql://`` to psycopg 3; ``mmbench[postgres]`` installs psycopg2,
    so a plain URL would fail with "driver missing" although a driver is there.

    Example:
        >>> with_driver("sqlite:///optuna.db")
        'sqlite:///optuna.db'
    """
    import importlib.util

    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2") is not None:
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def tune_sqlite(url: str) -> None:
    """Open the SQLite file of ``url`` (a no-op for other URLs) in write-ahead-log mode with
    ``synchronous=NORMAL``, on every connection any engine of this process makes to it.

    A trial writes a few dozen small transactions (Optuna's parameters, reports and attributes,
    MLflow's run); SQLite's default rollback journal syncs the disk on each, 2.1 to 2.7 ms a commit
    on this project's machine against 0.03 ms in WAL mode (``benchmarks/sqlite_commits.py``), and
    lets readers block the writer. WAL mode persists in the file and works for
    several processes on one machine; a database on a network file system needs PostgreSQL
    anyway (docs/search.md). ``synchronous=NORMAL`` can lose the last commits on a power cut,
    never on a crash of the process, and never corrupts the file.
    """
    scheme, _, _ = url.partition("://")
    if not scheme.startswith("sqlite"):
        return
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if not database or database == ":memory:":
        return
    with _TUNED_LOCK:
        if not _TUNED:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            event.listen(Engine, "connect", _on_connect)
        _TUNED.add(os.path.realpath(database))


def _on_connect(dbapi_connection: object, _record: object) -> None:
    """SQLAlchemy's connect hook: set the pragmas on connections to a tuned file."""
    import sqlite3

    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    main = next((row[2] for row in dbapi_connection.execute("PRAGMA database_list") if row[1] == "main"), "")
    if main and os.path.realpath(main) in _TUNED:
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=NORMAL")
