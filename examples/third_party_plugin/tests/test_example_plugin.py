"""The example plugin's own tests: mmbench's conformance kit over each component it provides."""

from __future__ import annotations

import pytest
from mmbench_example.data import BlobsProvider
from mmbench_example.encoders import GatedEmbedding
from mmbench_example.fusion import SumFusion

from mmbench.testing import check_dataset, check_encoder, check_fusion, parametrize_with_checks


@parametrize_with_checks([GatedEmbedding, SumFusion, BlobsProvider])
def test_conformance(component, check):
    """One test per (component, check), e.g. ``embedding.gated-check_gradients``."""
    check(component.name, component)


@pytest.mark.parametrize(("component", "run_checks"), [(GatedEmbedding, check_encoder), (SumFusion, check_fusion), (BlobsProvider, check_dataset)])
def test_every_check_at_once(component, run_checks):
    run_checks(component)  # raises mmbench.testing.ConformanceError listing every failed check
