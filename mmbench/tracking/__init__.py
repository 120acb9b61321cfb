"""Tracking: the only package that talks to MLflow (runs, artifacts, plots, the leaderboard)."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "DEFAULT_STORAGE": ".layout",
        "DEFAULT_TRACKING_URI": ".layout",
        "ROLE_STUDY": ".layout",
        "ROLE_TRIAL": ".layout",
        "Row": ".leaderboard",
        "TAG": ".layout",
        "Tracker": ".tracker",
        "average_ranks": ".leaderboard",
        "leaderboard": ".leaderboard",
        "log_best_model": ".artifacts",
        "log_study_plots": ".artifacts",
        "render": ".leaderboard",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
