"""Degradations for the robustness protocol: tabular/text operations and media corruptions."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "OPERATIONS": ".base",
        "degrade": ".base",
        "degrade_audio": ".media",
        "degrade_images": ".media",
        "parse_degrade": ".base",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
