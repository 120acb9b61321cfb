"""The one rule that decides which trial is best, used by the study, the saved model and the leaderboard.

**Rule:** the better validation score (the first objective; higher, or lower for an error metric
such as ``rmse``: :func:`~mmbench.train.metrics.metric_direction`) wins; among equal scores, the earlier
trial (the lower trial number) wins. A NaN or missing score ranks last. The study's best trial
(``mmbench.best_trial``), the model logged for it (the one ``mmbench predict`` loads) and the
leaderboard's order all use :func:`rank_key`, so they name the same trial.
"""

from __future__ import annotations

import math
import sys


def rank_key(value: float | None, trial_number: int | None, metric: str | None = None) -> tuple[float, int]:
    """Sort key of a trial: larger is better (``max(trials, key=...)`` picks the best); ``metric``
    names the score so that a lower-is-better one is negated.

    Example:
        >>> max([(0, 0.35), (5, 0.35), (2, 0.30)], key=lambda t: rank_key(t[1], t[0]))
        (0, 0.35)
        >>> rank_key(float("nan"), 0) < rank_key(0.0, 99)
        True
        >>> rank_key(2.0, 0, "rmse") > rank_key(3.0, 0, "rmse")
        True
    """
    from mmbench.train.metrics import metric_sign

    sign = metric_sign(metric) if metric else 1.0
    score = sign * value if value is not None and math.isfinite(value) else -math.inf
    return (score, -(trial_number if trial_number is not None else sys.maxsize))
