"""An example mmbench plugin: the hook implementations mmbench calls at start-up.

The module is registered under the ``mmbench`` entry-point group (see ``pyproject.toml``).
Hooks import the component modules lazily, so ``mmbench --help`` and ``mmbench plugins`` stay
fast even when a plugin's components pull in heavy libraries.
"""

from __future__ import annotations

from pathlib import Path

from mmbench import hookimpl

__version__ = "0.1.0"


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_example.timeseries import TimeseriesKind

    return [TimeseriesKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_example.encoders import GatedEmbedding
    from mmbench_example.series_encoders import Conv1dSeries

    return [GatedEmbedding, Conv1dSeries]


@hookimpl
def mmbench_fusions() -> list[type]:
    from mmbench_example.fusion import SumFusion

    return [SumFusion]


@hookimpl
def mmbench_datasets() -> list[type]:
    from mmbench_example.data import BlobsProvider, WavesProvider

    return [BlobsProvider, WavesProvider]


@hookimpl
def mmbench_tasks() -> list[Path]:
    return sorted((Path(__file__).parent / "tasks").glob("*.yaml"))
