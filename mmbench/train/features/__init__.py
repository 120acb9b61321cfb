"""The feature cache for frozen encoders: keys, the store, computation and the cached encoder."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "CachedEncoder": ".cache",
        "FeatureCache": ".cache",
        "compute_features": ".cache",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
