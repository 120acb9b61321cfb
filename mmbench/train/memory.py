"""Peak host RAM and GPU memory of one trial, recorded on its MLflow run (``peak_rss_mb``, ``peak_gpu_mb``).

Knowing which configurations come close to the machine's memory tells a user which batch size
or encoder to exclude before a long search fails. The host peak is the process's resident-set
high-water mark (``VmHWM``), reset at the start of each trial where Linux allows it
(``/proc/self/clear_refs``); elsewhere it is the process's peak so far (``getrusage``), an upper
bound. Trials run in parallel threads (``--n-jobs``) share one process, so their peaks overlap.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def reset_peak_rss() -> bool:
    """Reset the process's RSS high-water mark (Linux >= 4.0); ``False`` where that is not allowed."""
    try:
        _CLEAR_REFS.write_text("5")
    except OSError:
        return False
    return True


def peak_rss_mb() -> float:
    """The process's resident-set high-water mark in MiB."""
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, kB elsewhere


@dataclass
class PeakMemory:
    """Measures the peaks between :meth:`start` and :meth:`metrics`.

    Example:
        >>> peaks = PeakMemory.start()
        >>> sorted(peaks.metrics())
        ['peak_rss_mb']
    """

    device: torch.device | None = None

    @classmethod
    def start(cls, device: torch.device | None = None) -> PeakMemory:
        """Reset the peaks and start measuring (GPU peaks only for a CUDA ``device``)."""
        reset_peak_rss()
        if device is not None and device.type == "cuda":
            import torch

            torch.cuda.reset_peak_memory_stats(device)
        return cls(device)

    def metrics(self) -> dict[str, float]:
        """``peak_rss_mb`` and, on CUDA, ``peak_gpu_mb`` (memory allocated by torch's caching allocator)."""
        values = {"peak_rss_mb": round(peak_rss_mb(), 1)}
        if self.device is not None and self.device.type == "cuda":
            import torch

            values["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)
        return values
