"""Small, seeded example inputs for the conformance kit (:mod:`mmbench.testing.kit`).

Three sources of encoder inputs, tried in this order for an encoder class:

1. the encoder's own hooks ``example_info()`` / ``example_batch(info, batch_size, seed)``;
2. when the encoder brings its own preprocessing (``Encoder.preprocessor`` returns one, as
   pretrained encoders do), that preprocessor fitted on a few generated raw rows, so the batch
   is exactly what training would feed it;
3. otherwise the example info and random batch the encoder's registered
   :class:`~mmbench.ModalityKind` declares (``example_info`` / ``example_batch``).

Fusions get one :class:`~mmbench.components.Encoded` per modality, deliberately varied: tokens with
padding, pooled only, and tokens without a mask, each of a different width.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from mmbench.components import Encoded, Encoder
from mmbench.data.schema import ModalityInfo
from mmbench.modalities import ModalityKind

Batch = dict[str, torch.Tensor]

def _kind(name: str) -> type[ModalityKind]:
    from mmbench.registry import get_registry

    return get_registry().get_kind(name)


def example_info(kind: str, **changes: Any) -> ModalityInfo:
    """A fitted ModalityInfo of ``kind`` with the small sizes the kind declares; ``changes`` override fields.

    Example:
        >>> example_info("embedding", seq_len=5).seq_len
        5
    """
    declared = _kind(kind)
    columns = declared.example_columns or (declared.name,)
    info = ModalityInfo(name=kind, kind=kind, columns=columns, extra=dict(declared.example_extra), **dict(declared.example_sizes))
    return info.with_updates(**changes) if changes else info


def example_batch(info: ModalityInfo, batch_size: int, seed: int = 0) -> Batch:
    """A random batch of ``batch_size`` rows in the default format of ``info.kind``."""
    return dict(_kind(info.kind).example_batch(info, batch_size, torch.Generator().manual_seed(seed)))


def example_rows(info: ModalityInfo, n_rows: int, seed: int = 0) -> dict[str, list[Any]]:
    """Raw column values (before preprocessing) for the columns of ``info``, as a provider returns them."""
    return _kind(info.kind).example_rows(info, n_rows, np.random.default_rng(seed))


def encoder_inputs(cls: type[Encoder], hyperparameters: Mapping[str, Any], batch_size: int, seed: int = 0) -> tuple[ModalityInfo, Batch]:
    """The fitted info and a batch of ``batch_size`` rows that encoder ``cls`` should accept."""
    hook_info = getattr(cls, "example_info", None)
    info = (hook_info() if callable(hook_info) else None) or example_info(cls.modality)
    hook_batch = getattr(cls, "example_batch", None)
    batch = hook_batch(info, batch_size, seed) if callable(hook_batch) else None
    if batch is not None:
        return info, dict(batch)
    preprocessor = cls.preprocessor(info, **hyperparameters)
    if preprocessor is None:
        return info, example_batch(info, batch_size, seed)
    import datasets

    data = datasets.Dataset.from_dict(example_rows(info, max(batch_size, 4), seed))
    fitted = preprocessor.fit(data)
    tensors = preprocessor.transform(data)
    return fitted, {key: value[:batch_size] for key, value in tensors.items()}


def fusion_inputs(n_modalities: int, batch_size: int, seed: int = 0) -> dict[str, Encoded]:
    """``n_modalities`` encodings of different widths: tokens + padding mask, pooled only, tokens without mask.

    Every tensor is a leaf that requires grad, so a check can see which inputs a fusion reads.
    """
    generator = torch.Generator().manual_seed(seed)
    encoded: dict[str, Encoded] = {}
    for index in range(n_modalities):
        dim, length = 6 + 4 * index, 5 - index % 2
        pooled = torch.randn((batch_size, dim), generator=generator).requires_grad_()
        if index % 3 == 1:
            encoded[f"m{index + 1}"] = Encoded(pooled=pooled)
            continue
        tokens = torch.randn((batch_size, length, dim), generator=generator).requires_grad_()
        mask = None
        if index % 3 == 0:
            lengths = torch.tensor([max(1, length - row % 3) for row in range(batch_size)])
            mask = torch.arange(length)[None, :] < lengths[:, None]
        encoded[f"m{index + 1}"] = Encoded(pooled=pooled, tokens=tokens, mask=mask)
    return encoded
