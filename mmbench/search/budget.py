"""The hard wall-clock budget of ``mmbench search --time-limit``: one deadline, split into stages.

``--timeout`` only stops *starting* trials; a :class:`Budget` is a promise about the whole run:
data preparation, trials, the later stages (fine-tuning, the ensemble) and the final logging all
end by ``started + time_limit``. Each stage gets a share of what is left when it starts; a
running trial receives its stage's deadline as a plain ``time.monotonic()`` value (the training
loop never imports the search), stops at it and keeps its best epoch so far.

Example:
    >>> budget = Budget(120.0, shares={"search": 0.8, "ensemble": 0.2}, started=0.0)
    >>> round(budget.stage_deadline("search", now=20.0), 1)  # 80 % of the 97 s left at 20 s (3 s kept for the end)
    97.6
    >>> budget.remaining(now=130.0)
    0.0
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from mmbench.errors import ConfigError

#: Stages after data preparation, in the order a search runs them.
STAGES: tuple[str, ...] = ("search", "finetune", "ensemble")
#: Stage shares when no preset gives them: almost everything to the search.
DEFAULT_SHARES: Mapping[str, float] = {"search": 0.9, "finetune": 0.0, "ensemble": 0.1}
#: Seconds kept back for the final bookkeeping (best model, parent run) after the last stage.
FINAL_RESERVE_S = 3.0
#: Tag (and trial attribute) naming why a trial stopped before its last epoch.
STOPPED_TAG = "mmbench.stopped"
TIME_LIMIT_REASON = "time_limit"


@dataclass
class Budget:
    """A deadline ``time_limit`` seconds after ``started`` (``time.monotonic()``), shared by stages.

    Args:
        time_limit: the whole run's seconds.
        shares: stage -> fraction of the remaining time it may use when it starts (see :data:`STAGES`).
        started: when the clock started (default: now).
    """

    time_limit: float
    shares: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_SHARES))
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.time_limit > 0:
            raise ConfigError(f"--time-limit must be positive, got {self.time_limit}")
        unknown = sorted(set(self.shares) - set(STAGES))
        if unknown:
            raise ConfigError(f"budget stages: unknown {', '.join(unknown)}; known: {', '.join(STAGES)}")
        if any(not 0 <= s <= 1 for s in self.shares.values()) or sum(self.shares.values()) > 1 + 1e-9:
            raise ConfigError(f"budget stage shares must be in [0, 1] and sum to at most 1, got {dict(self.shares)}")

    @property
    def deadline(self) -> float:
        """The ``time.monotonic()`` value by which everything has ended."""
        return self.started + self.time_limit

    def remaining(self, now: float | None = None) -> float:
        """Seconds left (never negative)."""
        return max(0.0, self.deadline - (time.monotonic() if now is None else now))

    def elapsed(self, now: float | None = None) -> float:
        return (time.monotonic() if now is None else now) - self.started

    def stage_deadline(self, stage: str, now: float | None = None) -> float:
        """When ``stage``, starting now, must end: its share of the time that later stages leave.

        A stage's share is of the time left at its start, relative to itself and the stages after it,
        so time a stage did not use passes on to the next one.
        """
        now = time.monotonic() if now is None else now
        later = STAGES[STAGES.index(stage):]
        weights = sum(self.shares.get(s, 0.0) for s in later)
        usable = max(0.0, self.deadline - FINAL_RESERVE_S - now) if weights else 0.0
        fraction = self.shares.get(stage, 0.0) / weights if weights else 0.0
        return now + usable * fraction

    def stage_seconds(self, stage: str, now: float | None = None) -> float:
        """Seconds ``stage`` may use if it starts now (0: skip it)."""
        now = time.monotonic() if now is None else now
        return max(0.0, self.stage_deadline(stage, now) - now)
