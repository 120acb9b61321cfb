"""A new modality kind, ``timeseries``: a series of numbers (or of vectors) per row.

This module is what a plugin writes to add a kind mmbench does not know: its name, info fields,
default preprocessing (:class:`~mmbench_example.series_preprocess.SeriesPreprocessor`) and
conformance examples. Encoders of the kind are named ``timeseries.<short>`` (see
:mod:`mmbench_example.series_encoders`). The registry imports this module at start-up, so heavy
libraries are imported inside the methods.

Raw rows are lists of floats ``(T,)`` or lists of lists ``(T, C)``; series may differ in length.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from mmbench import ModalityInfo, ModalityKind, Preprocessor

if TYPE_CHECKING:
    import numpy as np
    import torch


class TimeseriesKind(ModalityKind):
    """Series of numbers or vectors, possibly of different lengths."""

    name = "timeseries"
    description = "series of numbers or vectors (T,) / (T, C) -> values (B, T, C) + mask (example plugin)"
    info_fields = ("seq_len", "dim")
    example_sizes = {"seq_len": 12, "dim": 2}

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
