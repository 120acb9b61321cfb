"""Which device each concurrent trial trains on (``--device``, ``--n-jobs``, ``--trials-per-gpu``).

Small models leave a GPU mostly idle, so several trials may share one (``--trials-per-gpu``);
on a machine with several GPUs, ``--device cuda`` spreads the trials over all of them. Each
running trial holds one *slot* of a :class:`DevicePool` for its whole duration, so no GPU ever
carries more than its share, whichever trial finishes first.
"""

from __future__ import annotations

import queue
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from mmbench.errors import ConfigError


def check_concurrency(*, n_jobs: int, trials_per_gpu: int) -> None:
    """``--n-jobs`` and ``--trials-per-gpu`` must be positive (checked before any data is loaded)."""
    if n_jobs < 1:
        raise ConfigError(f"--n-jobs must be at least 1, got {n_jobs}")
    if trials_per_gpu < 1:
        raise ConfigError(f"--trials-per-gpu must be at least 1, got {trials_per_gpu}")


def plan_slots(requested: str, *, n_jobs: int, trials_per_gpu: int, cuda_count: int) -> list[str]:
    """One device name per concurrent trial.

    Args:
        requested: ``auto``, ``cpu``, ``cuda`` (every visible GPU) or ``cuda:N`` (that one).
        n_jobs: trials the user asked to run at once (``--n-jobs``).
        trials_per_gpu: concurrent trials per GPU (``--trials-per-gpu``); ignored on the CPU,
            where ``--n-jobs`` alone sets the concurrency.
        cuda_count: visible CUDA devices (``torch.cuda.device_count()``).

    Returns:
        ``max(n_jobs, GPUs x trials_per_gpu)`` device names, GPUs taken round-robin; ``n_jobs``
        times ``"cpu"`` on the CPU.
    """
    check_concurrency(n_jobs=n_jobs, trials_per_gpu=trials_per_gpu)
    kind = "cuda" if requested == "auto" and cuda_count else "cpu" if requested == "auto" else requested
    if kind == "cpu":
        return ["cpu"] * n_jobs
    if not cuda_count:
        raise ConfigError(f"--device {requested}: CUDA is not available on this machine; use --device cpu or auto")
    gpus = [kind] if kind.startswith("cuda:") else [f"cuda:{i}" for i in range(cuda_count)]
    n_slots = max(n_jobs, len(gpus) * trials_per_gpu)
    return [gpus[i % len(gpus)] for i in range(n_slots)]


class DevicePool:
    """Slots of devices shared by the trial threads of one search."""

    def __init__(self, slots: Sequence[str]) -> None:
        if not slots:
            raise ValueError("a device pool needs at least one slot")
        self.slots = list(slots)
        self._free: queue.SimpleQueue[str] = queue.SimpleQueue()
        for slot in self.slots:
            self._free.put(slot)

    @classmethod
    def for_search(cls, requested: str, *, n_jobs: int, trials_per_gpu: int) -> DevicePool:
        """The pool for this machine (asks torch how many GPUs it sees)."""
        import torch

        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return cls(plan_slots(requested, n_jobs=n_jobs, trials_per_gpu=trials_per_gpu, cuda_count=count))

    @property
    def concurrency(self) -> int:
        """How many trials may run at once (the ``n_jobs`` handed to Optuna)."""
        return len(self.slots)

    @contextmanager
    def slot(self) -> Iterator[str]:
        """Hold a device for the duration of one trial (waits while every slot is taken)."""
        device = self._free.get()
        try:
            yield device
        finally:
            self._free.put(device)
