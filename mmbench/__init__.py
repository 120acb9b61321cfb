"""mmbench: AutoML for multimodal learning.

The public API for plugin authors and users. Attributes are imported lazily (PEP 562), so
``import mmbench`` (and ``mmbench --help``) does not import torch.

Example:
    >>> from mmbench import Int, hookimpl
    >>> Int(1, 4).describe()
    'int[1, 4]'
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from mmbench.hookspecs import hookimpl
from mmbench.space import Categorical, Float, Int

__version__ = "0.1.0"

_LAZY = {
    "ConfigError": "mmbench.errors",
    "DataError": "mmbench.errors",
    "DatasetProvider": "mmbench.data.provider",
    "Encoded": "mmbench.components",
    "Encoder": "mmbench.components",
    "Fusion": "mmbench.components",
    "LoadContext": "mmbench.data.provider",
    "MmbenchError": "mmbench.errors",
    "ModalityInfo": "mmbench.data.schema",
    "Preprocessor": "mmbench.data.preprocess.base",
    "RawData": "mmbench.data.provider",
    "Schema": "mmbench.data.schema",
    "SearchSettings": "mmbench.search.settings",
    "TrialConfig": "mmbench.search.trials",
    "get_registry": "mmbench.registry",
    "mlp": "mmbench.components",
    "run_search": "mmbench.search.study",
}

__all__ = sorted(["Categorical", "Float", "Int", "hookimpl", "__version__", *_LAZY])

if TYPE_CHECKING:
    from mmbench.components import Encoded, Encoder, Fusion, mlp
    from mmbench.search.trials import TrialConfig
    from mmbench.data.preprocess.base import Preprocessor
    from mmbench.data.provider import DatasetProvider, LoadContext, RawData
    from mmbench.data.schema import ModalityInfo, Schema
    from mmbench.errors import ConfigError, DataError, MmbenchError
    from mmbench.registry import get_registry
    from mmbench.search.settings import SearchSettings
    from mmbench.search.study import run_search


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmbench' has no attribute {name!r}")
