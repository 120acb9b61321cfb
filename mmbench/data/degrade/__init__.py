"""Degradations for the robustness protocol: the ``data.degrade`` block, applied through each kind's operations."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "degrade": ".base",
        "operations": ".base",
        "parse_degrade": ".base",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
