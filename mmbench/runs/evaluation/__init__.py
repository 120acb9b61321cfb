"""Holistic evaluation beyond accuracy: robustness, modality contributions, efficiency,
unimodal baselines, seed reruns and the HTML report.

Submodules (each one job, heavy imports inside): :mod:`~mmbench.runs.evaluation.scoring`
(``mmbench evaluate``), :mod:`~mmbench.runs.evaluation.robustness`,
:mod:`~mmbench.runs.evaluation.contributions`, :mod:`~mmbench.train.efficiency`,
:mod:`~mmbench.runs.evaluation.baselines`, :mod:`~mmbench.runs.evaluation.seeds`,
:mod:`~mmbench.runs.evaluation.steps` (``mmbench search --robustness/--baselines/--seeds`` as
post-search steps, run after the study so evaluation never slows or influences the search),
:mod:`~mmbench.runs.evaluation.report`.
"""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "Evaluation": ".scoring",
        "PostSearchStep": ".steps",
        "evaluate_run": ".scoring",
        "post_search": ".steps",
        "post_search_steps": ".steps",
        "run_post_search": ".steps",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
