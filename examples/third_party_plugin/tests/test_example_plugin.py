"""The example plugin's own tests: mmbench's conformance kit over each component it provides."""

from __future__ import annotations

import pytest
from mmbench_example.data import BlobsProvider, WavesProvider
from mmbench_example.encoders import GatedEmbedding
from mmbench_example.fusion import SumFusion
from mmbench_example.series_encoders import Conv1dSeries

from mmbench.testing import check_dataset, check_encoder, check_fusion, parametrize_with_checks


@parametrize_with_checks([GatedEmbedding, Conv1dSeries, SumFusion, BlobsProvider, WavesProvider])
def test_conformance(component, check):
    """One test per (component, check), e.g. ``embedding.gated-check_gradients``."""
    check(component.name, component)


@pytest.mark.parametrize(("component", "run_checks"), [
        (GatedEmbedding, check_encoder), (Conv1dSeries, check_encoder), (SumFusion, check_fusion),
        (BlobsProvider, check_dataset), (WavesProvider, check_dataset),
    ])
def test_every_check_at_once(component, run_checks):
    run_checks(component)  # raises mmbench.testing.ConformanceError listing every failed check


def test_series_are_padded_masked_and_standardised_with_training_statistics():
    import datasets
    import torch
    from mmbench_example.timeseries import TimeseriesKind

    from mmbench import ModalityInfo

    train = datasets.Dataset.from_dict({"s": [[1.0, 2.0, 3.0], [3.0, 5.0]]})
    preprocessor = TimeseriesKind.default_preprocessor(ModalityInfo(name="s", kind="timeseries", columns=("s",)))
    fitted = preprocessor.fit(train)
    assert (fitted.seq_len, fitted.dim) == (3, 1)
    tensors = preprocessor.transform(datasets.Dataset.from_dict({"s": [[2.8, 2.8, 2.8, 9.0], [2.8]]}))
    assert tensors["mask"].tolist() == [[True, True, True], [True, False, False]]
    assert torch.allclose(tensors["values"][0, :, 0], torch.zeros(3), atol=1e-4)  # 2.8 is the training mean
    assert tensors["values"][1, 1:].abs().sum() == 0
