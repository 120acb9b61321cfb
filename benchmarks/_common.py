"""Helpers shared by the benchmark scripts (machine description, temporary stores, timing)."""

from __future__ import annotations

import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def machine() -> str:
    """One line naming the machine the figures were measured on."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return f"{cpu}, {os.cpu_count()} logical CPUs visible, {gpu}, torch {torch.__version__}, Python {platform.python_version()}"


def temporary_stores(prefix: str) -> tuple[Path, dict[str, str]]:
    """A fresh folder and SQLite Optuna/MLflow URIs inside it (benchmarks never touch ./mlflow.db)."""
    folder = Path(tempfile.mkdtemp(prefix=f"mmbench-bench-{prefix}-"))
    return folder, {"storage": f"sqlite:///{folder / 'optuna.db'}", "tracking_uri": f"sqlite:///{folder / 'mlflow.db'}"}


def timed(function: Callable[[], object]) -> tuple[float, object]:
    """Wall seconds of one call and its result."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def median(values: list[float]) -> float:
    return statistics.median(values)


def quiet() -> None:
    """Keep library logs out of the printed figures."""
    import logging
    import warnings

    warnings.filterwarnings("ignore")
    for name in ("mlflow", "alembic", "optuna", "mmbench"):
        logging.getLogger(name).setLevel(logging.ERROR)


#: Markers of the section of ``docs/results.md`` that ``vs_peers.py`` owns (``suite.py`` keeps it).
PEERS_START, PEERS_END = "<!-- vs_peers:start -->", "<!-- vs_peers:end -->"


def peers_section(path: Path) -> str:
    """The ``vs_peers.py`` section of ``path`` (markers included, newline-terminated), or ``""``."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if PEERS_START not in text or PEERS_END not in text:
        return ""
    return text[text.index(PEERS_START): text.index(PEERS_END) + len(PEERS_END)] + "\n"


def write_peers_section(path: Path, section: str) -> None:
    """Replace the ``vs_peers.py`` section of ``path`` (or append it) so the rest of the file stays."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    old = peers_section(path)
    text = text.replace(old, section) if old else text.rstrip("\n") + "\n\n" + section
    path.write_text(text, encoding="utf-8")
