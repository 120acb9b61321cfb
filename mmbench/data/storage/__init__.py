"""Where data lives past memory: spill files, read-ahead and the decoded-media cache."""

from mmbench._lazy import lazy_exports

_exports = lazy_exports(
    __name__,
    {
        "SpillFolder": ".spill",
        "available_memory": ".spill",
        "decode_chunks": ".media_cache",
        "decode_column": ".media_cache",
        "decode_each": ".media_cache",
        "is_spilled": ".spill",
        "memory_budget": ".spill",
        "read_ahead": ".prefetch",
    },
)
__all__ = _exports.__all__
__getattr__ = _exports.__getattr__
__dir__ = _exports.__dir__
