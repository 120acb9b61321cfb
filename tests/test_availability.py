"""Encoders that cannot run here (no checkpoint) are left out of the default space, refused when named."""

from __future__ import annotations

import types

import pytest

from mmbench.components import Encoded, Encoder
from mmbench.search.trials import build_search_space
from mmbench.data.schema import ModalityInfo, Schema
from mmbench.errors import ConfigError
from mmbench.registry import load_registry


class NeedsCheckpoint(Encoder):
    name = "embedding.needs_checkpoint"
    modality = "embedding"

    @classmethod
    def unavailable_reason(cls):
        return "set MMBENCH_TEST_MODEL=/path/to/model"

    def __init__(self, info):  # pragma: no cover - never built: unavailable
        super().__init__(info)
        self.out_dim = 1

    def forward(self, batch):  # pragma: no cover
        return Encoded(pooled=batch["values"])


@pytest.fixture
def schema():
    info = ModalityInfo(name="x1", kind="embedding", columns=("x1",))
    return Schema(modalities={"x1": info}, label="label", classes=("a", "b"))


def test_default_space_leaves_unavailable_encoders_out(schema):
    plugin = types.SimpleNamespace(mmbench_encoders=lambda: [NeedsCheckpoint])
    from mmbench.hookspecs import hookimpl

    plugin.mmbench_encoders = hookimpl(plugin.mmbench_encoders)
    registry = load_registry(extra_plugins=[("needs-checkpoint", plugin)])
    space = build_search_space(schema, registry)
    assert "embedding.needs_checkpoint" not in space.encoders["x1"]
    assert "embedding.mlp" in space.encoders["x1"]
    with pytest.raises(ConfigError, match="embedding.needs_checkpoint' is not available: set MMBENCH_TEST_MODEL"):
        build_search_space(schema, registry, encoders={"x1": ["embedding.needs_checkpoint"]})
