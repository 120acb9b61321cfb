"""Work on finished runs: reproduce, predict, and the post-search evaluations."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "Reproduction": ".reproduce",
        "load_model": ".predict",
        "predict_file": ".predict",
        "reproduce": ".reproduce",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
