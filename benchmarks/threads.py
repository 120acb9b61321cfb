"""Thread settings on a shared CPU: the same small search under OpenMP wait policies and thread counts.

Each variant runs ``mmbench search TASK --n-trials N --max-epochs E`` in a fresh process (the
OpenMP policy is read when torch loads), in its own temporary stores; variants alternate
(a, b, c, d, a, b, ...) so load from other work hits all alike. The figure is each variant's
median wall time and its ratio to mmbench's default (``OMP_WAIT_POLICY=PASSIVE`` set by the CLI
entry point when the user has not set it; see :mod:`mmbench.infra.threads`).

    python benchmarks/threads.py [--task synth-mixed] [--n-trials 3] [--max-epochs 3] [--repeats 3] [--data-root DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import machine, median, temporary_stores  # noqa: E402

#: Calling the typer app directly skips ``main()``, so OpenMP keeps its own default (spin, then sleep).
_APP = "import sys; from mmbench.cli.app import app; sys.argv[0] = 'mmbench'; app()"
_MAIN = "import sys; from mmbench.cli.app import main; sys.argv[0] = 'mmbench'; main()"

VARIANTS: dict[str, tuple[str, dict[str, str]]] = {
    "mmbench default (PASSIVE, torch's threads)": (_MAIN, {}),
    "OpenMP default (spin, then sleep)": (_APP, {}),
    "OMP_WAIT_POLICY=ACTIVE": (_MAIN, {"OMP_WAIT_POLICY": "ACTIVE"}),
    "PASSIVE + OMP_NUM_THREADS=1": (_MAIN, {"OMP_NUM_THREADS": "1"}),
}


def run_once(code: str, extra_env: dict[str, str], args: list[str]) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OMP_", "GOMP_", "KMP_"))}
    env.update(extra_env)
    _, stores = temporary_stores("threads")
    command = [sys.executable, "-c", code, "search", *args, "--storage", stores["storage"],
               "--tracking-uri", stores["tracking_uri"], "--no-plots", "-q"]
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="synth-mixed")
    parser.add_argument("--n-trials", type=int, default=3)
    parser.add_argument("--max-epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--data-root", default=None)
    options = parser.parse_args()
    args = [options.task, "--n-trials", str(options.n_trials), "--max-epochs", str(options.max_epochs), "--seed", "0"]
    if options.data_root:
        args += ["--data-root", options.data_root]
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for repeat in range(options.repeats):
        for name, (code, env) in VARIANTS.items():
            times[name].append(run_once(code, env, args))
            print(f"repeat {repeat + 1} {name}: {times[name][-1]:.1f} s", flush=True)
    print(f"\n{machine()}; os.cpu_count()={os.cpu_count()}, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"mmbench search {' '.join(args)}: median of {options.repeats} alternating runs")
    reference = median(times[next(iter(VARIANTS))])
    for name, values in times.items():
        print(f"  {name:45s} {median(values):7.1f} s  ({median(values) / reference:.2f}x)")


if __name__ == "__main__":
    main()
