"""The search: settings, the trial space, the study lifecycle, the objective, samplers and progress."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "Objective": ".objective",
        "PlainReporter": ".progress",
        "QuietReporter": ".progress",
        "Reporter": ".progress",
        "RichReporter": ".progress",
        "SearchOutcome": ".study",
        "SearchPlan": ".study",
        "SearchSettings": ".settings",
        "SearchSpace": ".trials",
        "TRAIN_SPACE": ".trials",
        "TrialConfig": ".trials",
        "build_search_space": ".trials",
        "default_reporter": ".progress",
        "make_pruner": ".samplers",
        "make_sampler": ".samplers",
        "run_search": ".study",
        "run_suite": ".study",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
