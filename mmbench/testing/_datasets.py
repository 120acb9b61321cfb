"""Dataset-provider checks of the conformance kit; re-exported by :mod:`mmbench.testing.kit`.

Providers that read files define ``example_task(directory)``: write a few files under
``directory`` and return ``{"options": {...}, "label": "<column>", "modalities": {...}}``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mmbench.testing._errors import _calling, _fail
from mmbench.errors import ConfigError


def _example_task(component: type, directory: Path) -> dict[str, Any]:
    hook = getattr(component, "example_task", None)
    task = dict(hook(directory) or {}) if callable(hook) else {}
    return {"options": dict(task.get("options") or {}), "label": task.get("label", "label"), "modalities": dict(task.get("modalities") or {})}


@contextlib.contextmanager
def _no_progress_bars() -> Iterator[None]:
    """Keep ``datasets``' progress bars out of the kit's output (restored afterwards)."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def _loaded(name: str, component: type, check: str, directory: Path) -> tuple[Any, dict[str, Any]]:
    from mmbench.data.provider import LoadContext

    fix = "make load() work with the options of example_task(directory) (and define example_task if it needs files)"
    with _calling(name, component, check, "example_task(directory)", "return {'options': {...}, 'label': '<column>'}"):
        task = _example_task(component, directory)
    with _calling(name, component, check, f"loading with options {task['options']}", fix), _no_progress_bars():
        raw = component(**task["options"]).load(LoadContext(data_root=directory, task_dir=directory, seed=0))
    return raw, task


def prepared_data(name: str, component: type, check: str) -> Any:
    from mmbench.data.prepare import DataSpec, prepare
    from mmbench.data.preprocess.base import default_preprocessor

    with tempfile.TemporaryDirectory(prefix="mmbench-check-") as directory:
        raw, task = _loaded(name, component, check, Path(directory))
        with _calling(name, component, check, f"preparing (label '{task['label']}')", "return columns of known kinds, a label column and at least two classes"), \
                _no_progress_bars():
            prepared = prepare(raw, DataSpec(label=task["label"], modalities=task["modalities"]))
            _, splits = prepared.tensors({m: default_preprocessor(info) for m, info in prepared.schema.modalities.items()})
        for split, tensors in splits.items():
            for modality, values in tensors.inputs.items():
                if any(int(v.shape[0]) != prepared.split_sizes[split] for v in values.values()):
                    _fail(name, component, check, f"modality '{modality}' of split '{split}' has a row count unlike the label's", "return equally long columns")
    return prepared


def check_unknown_option_rejected(name: str, component: type) -> None:
    """An option the provider does not declare is a :class:`ConfigError` (a typo in a task file must not pass silently)."""
    try:
        component(mmbench_conformance_unknown_option=1)
    except ConfigError:
        return
    except Exception as error:  # noqa: BLE001
        _fail(name, component, "check_unknown_option_rejected", f"an unknown option raised {type(error).__name__}, not ConfigError",
              "call super().__init__(**settings) in __init__")
    _fail(name, component, "check_unknown_option_rejected", "an unknown option was accepted", "call super().__init__(**settings) in __init__")


def check_load(name: str, component: type) -> None:
    """``load`` returns :class:`~mmbench.RawData`: splits train/validation/test or 'all', each a non-empty
    ``datasets.Dataset`` with the same columns, holding the label and the declared modality columns."""
    import datasets

    from mmbench.data.infer import TABULAR_SUBKINDS
    from mmbench.data.provider import SPLITS, RawData
    from mmbench.registry import get_registry

    check = "check_load"
    with tempfile.TemporaryDirectory(prefix="mmbench-check-") as directory:
        raw, task = _loaded(name, component, check, Path(directory))
        if not isinstance(raw, RawData):
            _fail(name, component, check, f"load returned {type(raw).__name__}", "return mmbench.RawData(splits=..., modalities=...)")
        names = set(raw.splits)
        if names not in ({"all"}, set(SPLITS)):
            _fail(name, component, check, f"splits are {sorted(names)}", "return splits train/validation/test, or one 'all' for the core to split")
        columns = None
        for split, data in raw.splits.items():
            if not isinstance(data, datasets.Dataset) or data.num_rows == 0:
                _fail(name, component, check, f"split '{split}' is not a non-empty datasets.Dataset", "build it with datasets.Dataset.from_dict")
            if columns is not None and set(data.column_names) != columns:
                _fail(name, component, check, f"split '{split}' has other columns than the first split", "give every split the same columns")
            columns = set(data.column_names)
        if task["label"] not in columns:
            _fail(name, component, check, f"no label column '{task['label']}' among {sorted(columns)}", "return the label column named by example_task")
        known = (*get_registry().list_kinds(), *TABULAR_SUBKINDS)
        for column, kind in raw.modalities.items():
            if column not in columns or kind not in known:
                _fail(name, component, check, f"modalities maps '{column}' to '{kind}'", f"map existing columns to {', '.join(known)}")


def check_prepare(name: str, component: type) -> None:
    """The core prepares the loaded data (split, typed, fingerprinted) and the default preprocessing of
    every modality turns it into tensors."""
    prepared_data(name, component, "check_prepare")
