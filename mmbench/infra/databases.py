"""Database URLs as SQLAlchemy needs them: the installed PostgreSQL driver named in the URL.

Used for the Optuna ``--storage`` and for an MLflow ``--tracking-uri`` that is a database, so a
plain ``postgresql://`` URL works for both.
"""

from __future__ import annotations


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
