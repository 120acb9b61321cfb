"""Start-up time of the command line: ``mmbench --help`` (goal <= 0.5 s) and ``mmbench plugins``.

Each command runs ``--repeats`` times in a fresh interpreter (after one untimed run that warms
the file cache); the figure is the median wall time. Beside it, the floor a Python command
cannot go below on this machine (``python -c pass``) and the cost of ``import torch``, which
``mmbench plugins`` pays because plugin classes subclass ``torch.nn.Module``.

    python benchmarks/startup.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median  # noqa: E402

_SCRIPT = Path(sys.executable).with_name("mmbench")  # the installed console script, as users run it
MMBENCH = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "mmbench.cli"]


def wall(command: list[str], repeats: int) -> float:
    subprocess.run(command, capture_output=True, check=True)  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        subprocess.run(command, capture_output=True, check=True)
        times.append(time.perf_counter() - started)
    return median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    figures = {
        "python -c pass": wall([sys.executable, "-c", "pass"], args.repeats),
        "python -c 'import torch'": wall([sys.executable, "-c", "import torch"], args.repeats),
        "mmbench --help": wall([*MMBENCH, "--help"], args.repeats),
        "mmbench search --help": wall([*MMBENCH, "search", "--help"], args.repeats),
        "mmbench plugins": wall([*MMBENCH, "plugins"], args.repeats),
    }
    print(f"machine: {machine()}")
    for name, seconds in figures.items():
        print(f"{name:28s} {seconds * 1000:8.0f} ms (median of {args.repeats})")
    help_s = figures["mmbench --help"]
    print(f"ratio  mmbench --help / 0.5 s goal = {help_s / 0.5:.2f}  (goal <= 1: {'met' if help_s <= 0.5 else 'NOT met'})")
    print(f"ratio  mmbench --help / python -c pass = {help_s / figures['python -c pass']:.2f}")
    print(f"ratio  mmbench plugins / python -c 'import torch' = {figures['mmbench plugins'] / figures['python -c ' + repr('import torch')]:.2f}")


if __name__ == "__main__":
    main()
