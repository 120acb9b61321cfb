"""Milliseconds per SQLite commit: the default rollback journal vs the write-ahead log mmbench's stores use.

A trial writes a few dozen small transactions to the Optuna and MLflow stores; this times one
small insert and commit, ``--commits`` times, on a file in ``--folder`` (default: a temporary one
on the disk under test), in each mode (``mmbench.infra.databases.tune_sqlite`` sets the second).

    python benchmarks/sqlite_commits.py [--commits 300] [--folder /path/on/the/disk]
"""

from __future__ import annotations

import argparse
import sqlite3
import tempfile
import time
from pathlib import Path

MODES = {"rollback journal (SQLite's default)": (), "WAL, synchronous=NORMAL (mmbench)": ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")}


def ms_per_commit(path: Path, pragmas: tuple[str, ...], commits: int) -> float:
    connection = sqlite3.connect(path)
    try:
        for pragma in pragmas:
            connection.execute(pragma)
        connection.execute("CREATE TABLE runs (id INTEGER, value TEXT)")
        started = time.perf_counter()
        for i in range(commits):
            connection.execute("INSERT INTO runs VALUES (?, ?)", (i, "x" * 100))
            connection.commit()
        return (time.perf_counter() - started) / commits * 1000
    finally:
        connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=300)
    parser.add_argument("--folder", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.folder) as folder:
        results = {mode: ms_per_commit(Path(folder) / f"{index}.db", pragmas, args.commits)
                   for index, (mode, pragmas) in enumerate(MODES.items())}
    for mode, ms in results.items():
        print(f"{mode:40s} {ms:8.3f} ms per commit")
    default, wal = results.values()
    print(f"ratio: {default / wal:.0f}x")


if __name__ == "__main__":
    main()
