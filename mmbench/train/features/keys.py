"""Keys of the feature cache: everything that changes a frozen encoder's outputs.

Hashed into an entry's file name (:mod:`mmbench.train.features.store`); bumping
:data:`CACHE_VERSION` retires every older entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmbench.data.schema import ModalityInfo

#: Bump when what is stored (or how it is computed) changes, so older entries are never reused.
CACHE_VERSION = "features-v2"


def entry_key(name: str, params: Mapping[str, Any], info: ModalityInfo, preprocessor_key: str, fingerprint: str) -> dict[str, Any]:
    """Everything that changes a frozen encoder's outputs (hashed into the entry's file name)."""
    key: dict[str, Any] = {
        "version": CACHE_VERSION,
        "encoder": name,
        "params": {k: jsonable(v) for k, v in sorted(params.items())},
        "modality": info.name,
        "columns": list(info.columns),
        "preprocessor": preprocessor_key,
        "fingerprint": fingerprint,
    }
    checkpoint = info.extra.get("checkpoint") if isinstance(info.extra, Mapping) else None
    if checkpoint:
        key["checkpoint"] = checkpoint_signature(Path(str(checkpoint)))
    return key


def checkpoint_signature(directory: Path) -> list[list[Any]]:
    """Name, size and modification time of every file of a checkpoint (cheap; no hashing of GBs)."""
    if not directory.is_dir():
        return []
    files = []
    for path in sorted(directory.rglob("*")):
        if path.is_file():
            stat = path.stat()
            files.append([str(path.relative_to(directory)), stat.st_size, stat.st_mtime_ns])
    return files


def jsonable(value: Any) -> Any:
    """``value`` if JSON keeps it as is, else its ``repr`` (a key stays stable and readable)."""
    return value if isinstance(value, (bool, int, float, str, type(None))) else repr(value)
