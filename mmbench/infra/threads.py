"""Thread settings that do not burn a shared CPU: OpenMP waits passively unless the user chose otherwise.

With OpenMP's default wait policy, idle worker threads spin between parallel regions; on a machine
whose cores are shared (other searches, other users, ``--n-jobs``) the spinning steals the cores the
work needs (a PetFinder trial: 314 s spinning, 53 s passive, same per-epoch values; see
``benchmarks/threads.py`` and docs/performance.md). The policy is read once, when torch loads its
OpenMP runtime, so :func:`passive_openmp` runs in the CLI entry point before anything imports torch.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping

#: OpenMP environment variable -> value mmbench sets when the user has not set it.
PASSIVE_OPENMP: dict[str, str] = {"OMP_WAIT_POLICY": "PASSIVE"}


def passive_openmp(environ: MutableMapping[str, str] | None = None) -> dict[str, str]:
    """Set :data:`PASSIVE_OPENMP` in ``environ`` (default ``os.environ``) where unset; returns what was set.

    A user's explicit setting (even ``OMP_WAIT_POLICY=ACTIVE``) is left alone.
    """
    environ = os.environ if environ is None else environ
    chosen = {name: value for name, value in PASSIVE_OPENMP.items() if name not in environ}
    environ.update(chosen)
    return chosen
