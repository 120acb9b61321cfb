"""What to tell the user when no trial of a search completed.

A search whose every trial failed (a learning rate that makes each loss NaN, a plugin that
crashes) has no result: ``mmbench search`` then exits non-zero with this summary instead of an
empty or another study's leaderboard.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from mmbench.search.attrs import TRACEBACK

#: The trial attribute holding the one-line failure reason (set by the objective).
REASON = "reason"


def failure_summary(trials: Sequence[Any]) -> str | None:
    """One line when trials failed and none completed, else ``None``.

    Example:
        >>> from types import SimpleNamespace as T
        >>> from optuna.trial import TrialState
        >>> failed = T(state=TrialState.FAIL, user_attrs={"reason": "loss is NaN", "traceback": "...\\nValueError: x\\n"})
        >>> failure_summary([failed, failed])
        '2 of 2 trials failed, none completed; most common reason (2x): loss is NaN; first traceback ends: ValueError: x'
    """
    from optuna.trial import TrialState

    if any(t.state == TrialState.COMPLETE for t in trials):
        return None
    failed = [t for t in trials if t.state == TrialState.FAIL]
    if not failed:
        return None
    reasons = Counter(t.user_attrs.get(REASON) or "no reason recorded" for t in failed)
    reason, count = reasons.most_common(1)[0]
    summary = f"{len(failed)} of {len(trials)} trials failed, none completed; most common reason ({count}x): {reason}"
    traceback = next((t.user_attrs[TRACEBACK] for t in failed if t.user_attrs.get(TRACEBACK)), "")
    lines = [line.strip() for line in traceback.splitlines() if line.strip()]
    return f"{summary}; first traceback ends: {lines[-1]}" if lines else summary
