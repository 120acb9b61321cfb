"""Built-in fusion strategies, registered through the ``mmbench`` entry-point group."""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_fusions() -> list[type]:
    from mmbench_fusion.basic import EarlyFusion, LateFusion

    return [EarlyFusion, LateFusion]
