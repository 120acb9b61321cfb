"""The feature cache for frozen encoders, one module per job.

:mod:`~mmbench.train.features.keys` (what an entry depends on), :mod:`~mmbench.train.features.compute`
(running the encoder once), :mod:`~mmbench.train.features.store` (:class:`FeatureCache`: memory,
disk, eviction), :mod:`~mmbench.train.features.encoder` (:class:`CachedEncoder`, a trial's stand-in).
"""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "CachedEncoder": ".encoder",
        "FeatureCache": ".store",
        "compute_features": ".compute",
        "entry_key": ".keys",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
