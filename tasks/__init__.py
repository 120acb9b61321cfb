"""Built-in benchmark tasks: the YAML files beside this module, shipped as a plugin."""

from __future__ import annotations

from pathlib import Path

from mmbench import hookimpl


@hookimpl
def mmbench_tasks() -> list[Path]:
    return sorted(Path(__file__).parent.glob("*.yaml"))
