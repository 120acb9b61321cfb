"""Built-in fusion strategies, registered through the ``mmbench`` entry-point group.

See ``docs/fusions.md`` for each strategy, its hyperparameters and its source paper.
"""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_fusions() -> list[type]:
    from mmbench_fusion.attention import CrossModalAttention
    from mmbench_fusion.basic import EarlyFusion, HybridFusion, LateFusion
    from mmbench_fusion.gating import FiLMFusion, GatedMultimodalUnit
    from mmbench_fusion.tensor import BilinearPooling, LowRankFusion, TensorFusion

    return [
        EarlyFusion,
        LateFusion,
        HybridFusion,
        GatedMultimodalUnit,
        TensorFusion,
        LowRankFusion,
        CrossModalAttention,
        FiLMFusion,
        BilinearPooling,
    ]
