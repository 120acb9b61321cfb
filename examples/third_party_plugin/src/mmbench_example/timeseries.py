"""A new modality kind, ``timeseries``: a series of numbers (or of vectors) per row.

This module is what a plugin writes to add a kind mmbench does not know: its name, info fields,
default preprocessing (:class:`~mmbench_example.series_preprocess.SeriesPreprocessor`), the
``data.degrade`` operations a task may apply to its columns (here one, ``jitter``) and
conformance examples. The kind holds no files, so it needs no file check; a missing series is
``None`` (the default :attr:`~mmbench.ModalityKind.missing_value`). Encoders of the kind are named ``timeseries.<short>`` (see
:mod:`mmbench_example.series_encoders`). The registry imports this module at start-up, so heavy
libraries are imported inside the methods.

Raw rows are lists of floats ``(T,)`` or lists of lists ``(T, C)``; series may differ in length.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mmbench import Degradation, ModalityInfo, ModalityKind, Preprocessor, Rngs, replace_column

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import torch


def jitter(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """``data.degrade``'s ``jitter``: Gaussian noise of standard deviation ``sigma`` added to every value.

    mmbench calls it once per target column, with ``rngs(split)`` seeded from the task, so a
    degraded task is the same data on every run (and has its own fingerprint).
    """
    (column,) = columns
    sigma = float(op["sigma"])
    out = {}
    for name, split in splits.items():
        rng = rngs(name)
        noisy = [None if value is None else _jittered(value, sigma, rng) for value in split[column]]
        out[name] = replace_column(split, column, noisy)
    return out


def _jittered(value: Any, sigma: float, rng: np.random.Generator) -> list[Any]:
    import numpy as np

    return (np.asarray(value, dtype=np.float64) + sigma * rng.standard_normal(np.shape(value))).tolist()


class TimeseriesKind(ModalityKind):
    """Series of numbers or vectors, possibly of different lengths."""

    name = "timeseries"
    description = "series of numbers or vectors (T,) / (T, C) -> values (B, T, C) + mask (example plugin)"
    info_fields = ("seq_len", "dim")
    example_sizes = {"seq_len": 12, "dim": 2}
    #: ``data.degrade: {timeseries: [{op: jitter, sigma: 0.5}]}``; parameter -> (default, min, max), None = required
    degradations = {"jitter": Degradation(jitter, {"sigma": (None, 0.0, 100.0)})}

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        from mmbench_example.series_preprocess import SeriesPreprocessor

        return SeriesPreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: torch.Generator) -> dict[str, torch.Tensor]:
        """Standardised values with padding at the end of some rows (at least one real step)."""
        import torch

        steps = int(info.seq_len or 12)
        values = torch.randn((batch_size, steps, int(info.dim or 1)), generator=generator)
        lengths = torch.tensor([max(1, steps - 3 * (row % 3)) for row in range(batch_size)])
        mask = torch.arange(steps)[None, :] < lengths[:, None]
        return {"values": values * mask[..., None], "mask": mask}

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: np.random.Generator) -> dict[str, list[Any]]:
        channels = int(info.dim or 1)
        return {c: [rng.normal(size=(int(rng.integers(5, 15)), channels)).tolist() for _ in range(n_rows)] for c in info.columns}
