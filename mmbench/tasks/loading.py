"""Load a task's data: provider -> :class:`RawData` -> :func:`prepare` -> :class:`PreparedData`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from mmbench.data.prepare import DataSpec, prepare
from mmbench.data.provider import LoadContext
from mmbench.data.splits import SplitSpec
from mmbench.errors import ConfigError

if TYPE_CHECKING:
    from mmbench.data.prepared import PreparedData
    from mmbench.registry import Registry
    from mmbench.tasks.files import Task

DATA_ROOT_VARIABLE = "MMBENCH_DATA"


def data_root(given: str | Path | None = None) -> Path | None:
    """``--data-root`` if given, else ``$MMBENCH_DATA``, else ``None``."""
    value = given or os.environ.get(DATA_ROOT_VARIABLE)
    if not value:
        return None
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ConfigError(f"data root '{root}' is not a directory (from {'--data-root' if given else DATA_ROOT_VARIABLE})")
    return root


def load_task_data(task: Task, registry: Registry, *, root: Path | None = None) -> PreparedData:
    """Run the task's provider and prepare its output (split, typed, fingerprinted)."""
    import datasets

    datasets.disable_progress_bars()
    provider_cls = registry.get_dataset(task.provider)
    provider = provider_cls(**task.options)
    split = SplitSpec(**task.split)
    context = LoadContext(data_root=root, task_dir=task.path.parent if task.path else None, seed=split.seed)
    raw = provider.load(context)
    extra = {"provider": task.provider, "options": dict(task.options), "data": {k: v for k, v in task.data.items() if k not in ("provider", "options")}}
    spec = DataSpec(
        label=task.label,
        modalities=dict(task.modalities),
        split=split,
        extra=extra,
        on_bad_rows=str(task.data.get("on_bad_rows") or "error"),
        degrade=dict(task.data.get("degrade") or {}),
        task_type=task.task_type,
        label_delimiter=task.label_delimiter,
    )
    return prepare(raw, spec)
