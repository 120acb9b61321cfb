"""Built-in tabular encoder: an MLP over numeric features and embedded categorical features."""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_tabular.kind import TabularKind

    return [TabularKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_tabular.mlp import MLPTabular

    return [MLPTabular]
