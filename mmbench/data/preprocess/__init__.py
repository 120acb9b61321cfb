"""Preprocessors: fitted on train, they turn a modality's columns into tensors."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "EmbeddingPreprocessor": ".base",
        "Preprocessor": ".base",
        "default_preprocessor": ".base",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
