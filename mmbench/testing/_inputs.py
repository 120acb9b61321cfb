"""Small, seeded example inputs for the conformance kit (:mod:`mmbench.testing.kit`).

Three sources of encoder inputs, tried in this order for an encoder class:

1. the encoder's own hooks ``example_info()`` / ``example_batch(info, batch_size, seed)``;
2. when the encoder brings its own preprocessing (``Encoder.preprocessor`` returns one, as
   pretrained encoders do), that preprocessor fitted on a few generated raw rows, so the batch
   is exactly what training would feed it;
3. otherwise a fitted :class:`~mmbench.data.schema.ModalityInfo` with small sizes and a random
   batch in the documented formats of the modality kind (``docs/architecture.md``, "Batch formats").

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

Batch = dict[str, torch.Tensor]

#: fitted infos of the kit's default batches, per modality kind (small, but not degenerate)
_INFOS: dict[str, dict[str, Any]] = {
    "embedding": {"dim": 6},
    "text": {"vocab_size": 30, "seq_len": 7},
    "image": {"channels": 3, "image_size": (16, 16)},
    "audio": {"sample_rate": 8000, "n_samples": 4000},
    "video": {"n_frames": 3, "channels": 3, "image_size": (16, 16)},
    "tabular": {"n_numeric": 3, "cardinalities": (4, 3)},
}
_COLUMNS: dict[str, tuple[str, ...]] = {"tabular": ("n1", "n2", "n3", "c1", "c2")}
_WORDS = "the a cat dog sat on mat red blue big small ran fast slow and".split()


def example_info(kind: str, **changes: Any) -> ModalityInfo:
    """A fitted ModalityInfo of ``kind`` with small sizes; ``changes`` override fields.

    Example:
        >>> example_info("embedding", seq_len=5).seq_len
        5
    """
    columns = _COLUMNS.get(kind, (kind,))
    extra = {"numeric": columns[:3], "categorical": columns[3:]} if kind == "tabular" else {}
    info = ModalityInfo(name=kind, kind=kind, columns=columns, extra=extra, **_INFOS.get(kind, {}))
    return info.with_updates(**changes) if changes else info


def example_batch(info: ModalityInfo, batch_size: int, seed: int = 0) -> Batch:
    """A random batch of ``batch_size`` rows in the default format of ``info.kind``.

    Text rows have different lengths (padding at the end, at least one real token), so masking
    bugs show.
    """
    generator = torch.Generator().manual_seed(seed)
    n = batch_size
    if info.kind == "embedding":
        shape = (n, info.seq_len, info.dim) if info.seq_len else (n, info.dim)
        return {"values": torch.randn(shape, generator=generator)}
    if info.kind == "text":
        length = int(info.seq_len or 7)
        ids = torch.randint(2, int(info.vocab_size or 30), (n, length), generator=generator)
        lengths = torch.tensor([max(1, length - row % 3) for row in range(n)])
        mask = torch.arange(length)[None, :] < lengths[:, None]
        return {"ids": ids.masked_fill(~mask, 0), "mask": mask}
    if info.kind == "image":
        return {"pixels": torch.randn((n, info.channels or 3, *(info.image_size or (16, 16))), generator=generator)}
    if info.kind == "audio":
        return {"waveform": 0.1 * torch.randn((n, int(info.n_samples or 4000)), generator=generator)}
    if info.kind == "video":
        shape = (n, info.n_frames or 3, info.channels or 3, *(info.image_size or (16, 16)))
        return {"frames": torch.randn(shape, generator=generator)}
    if info.kind == "tabular":
        batch: Batch = {}
        if info.n_numeric:
            batch["numeric"] = torch.randn((n, info.n_numeric), generator=generator)
        if info.cardinalities:
            columns = [torch.randint(0, c, (n,), generator=generator) for c in info.cardinalities]
            batch["categorical"] = torch.stack(columns, dim=1)
        return batch
    raise ValueError(f"no example batch for modality kind '{info.kind}'")


def example_rows(info: ModalityInfo, n_rows: int, seed: int = 0) -> dict[str, list[Any]]:
    """Raw column values (before preprocessing) for the columns of ``info``, as a provider returns them."""
    rng = np.random.default_rng(seed)
    rows: dict[str, list[Any]] = {}
    for column in info.columns:
        if info.kind == "text":
            rows[column] = [" ".join(rng.choice(_WORDS, size=int(rng.integers(2, 9)))) for _ in range(n_rows)]
        elif info.kind == "embedding":
            rows[column] = rng.normal(size=(n_rows, 6)).astype(np.float32).tolist()
        elif info.kind == "image":
            rows[column] = [rng.integers(0, 256, size=(20, 24, 3), dtype=np.uint8) for _ in range(n_rows)]
        elif info.kind == "audio":
            rows[column] = [{"array": (0.1 * rng.normal(size=8000)).astype(np.float32), "sampling_rate": 16000} for _ in range(n_rows)]
        elif info.kind == "video":
            rows[column] = [rng.integers(0, 256, size=(4, 16, 16, 3), dtype=np.uint8) for _ in range(n_rows)]
        elif column in info.extra.get("categorical", ()):
            rows[column] = [str(rng.choice(["x", "y", "z"])) for _ in range(n_rows)]
        else:
            rows[column] = rng.normal(size=n_rows).tolist()
    return rows


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
