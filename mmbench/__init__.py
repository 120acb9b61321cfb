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
    "ChannelStats": "mmbench.data.pixels",
    "ConfigError": "mmbench.errors",
    "DataError": "mmbench.errors",
    "DatasetProvider": "mmbench.data.provider",
    "Degradation": "mmbench.modalities",
    "EmbeddingPreprocessor": "mmbench.data.preprocess.base",
    "Encoded": "mmbench.components",
    "Encoder": "mmbench.components",
    "Fusion": "mmbench.components",
    "LoadContext": "mmbench.data.provider",
    "MediaError": "mmbench.errors",
    "MmbenchError": "mmbench.errors",
    "ModalityInfo": "mmbench.data.schema",
    "ModalityKind": "mmbench.modalities",
    "Preprocessor": "mmbench.data.preprocess.base",
    "RawData": "mmbench.data.provider",
    "Rngs": "mmbench.modalities",
    "Schema": "mmbench.data.schema",
    "SearchSettings": "mmbench.search.settings",
    "Tensors": "mmbench.data.preprocess.base",
    "TrialConfig": "mmbench.search.trials",
    "audio_header": "mmbench.data.media",
    "audio_rate": "mmbench.data.media",
    "column_items": "mmbench.data.media",
    "crop_or_pad": "mmbench.data.media",
    "decode_column": "mmbench.data.storage.media_cache",
    "decode_chunks": "mmbench.data.storage.media_cache",
    "decode_each": "mmbench.data.storage.media_cache",
    "frame_files": "mmbench.data.media",
    "get_registry": "mmbench.registry",
    "mlp": "mmbench.nn",
    "one_line": "mmbench.errors",
    "probe_images": "mmbench.data.pixels",
    "read_audio": "mmbench.data.media",
    "read_columns": "mmbench.data.infer",
    "read_image": "mmbench.data.media",
    "read_video": "mmbench.data.media",
    "replace_column": "mmbench.data.bad_rows",
    "resample": "mmbench.data.media",
    "resize_image": "mmbench.data.media",
    "run_search": "mmbench.search.study",
    "to_channels": "mmbench.data.media",
}

__all__ = sorted(["Categorical", "Float", "Int", "hookimpl", "__version__", *_LAZY])

if TYPE_CHECKING:
    from mmbench.components import Encoded, Encoder, Fusion
    from mmbench.search.trials import TrialConfig
    from mmbench.data.bad_rows import replace_column
    from mmbench.data.infer import read_columns
    from mmbench.data.media import (
        audio_header, audio_rate, column_items, crop_or_pad, frame_files, read_audio, read_image, read_video, resample, resize_image, to_channels,
    )
    from mmbench.data.pixels import ChannelStats, probe_images
    from mmbench.data.preprocess.base import EmbeddingPreprocessor, Preprocessor, Tensors
    from mmbench.data.provider import DatasetProvider, LoadContext, RawData
    from mmbench.data.schema import ModalityInfo, Schema
    from mmbench.data.storage.media_cache import decode_chunks, decode_column, decode_each
    from mmbench.errors import ConfigError, DataError, MediaError, MmbenchError, one_line
    from mmbench.modalities import Degradation, ModalityKind, Rngs
    from mmbench.nn import mlp
    from mmbench.registry import get_registry
    from mmbench.search.settings import SearchSettings
    from mmbench.search.study import run_search


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'mmbench' has no attribute {name!r}")
