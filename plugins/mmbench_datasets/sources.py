"""Labelled unimodal sources shared by the ``folders`` and ``paired`` providers.

A source is a list of cells (file paths or arrays) with one label each, read from:

* a class-per-folder tree (``root/<class>/<file>``),
* a glob whose file names carry the label (``{digit}_{speaker}_{take}.wav``, via a regex),
* a pair of IDX files (the MNIST distribution format, optionally gzipped).
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mmbench import ConfigError, DataError, LoadContext, get_registry

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Source:
    """Cells of one kind with labels (and optional groups such as speakers)."""

    kind: str
    cells: list[Any] | np.ndarray
    labels: list[str]
    groups: list[str] | None = None
    origin: str = ""
    notes: dict[str, Any] = field(default_factory=dict)


def kind_of(path: Path) -> str | None:
    """The file-based kind (``image``, ``audio``, ``video``...) a file extension marks."""
    return get_registry().kind_of_file(path)


def class_folders(root: Path, kind: str | None, where: str) -> Source:
    """``root/<class>/<item>``: files of one kind, or (video) frame folders, labelled by folder name."""
    if not root.is_dir():
        raise ConfigError(f"{where}: folder '{root}' not found")
    classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{where}: '{root}' has no class folders (expected {root}/<class>/<file>)")
    cells, labels, kinds = [], [], set()
    for folder in classes:
        for item in sorted(folder.iterdir()):
            if item.name.startswith("."):
                continue
            item_kind = "video" if item.is_dir() else kind_of(item)
            if item_kind is None or (kind is not None and item_kind != kind):
                continue
            kinds.add(item_kind)
            cells.append(str(item.relative_to(root)))
            labels.append(folder.name)
    if not cells:
        raise DataError(f"{where}: no {kind or 'media'} file under '{root}/<class>/'")
    if len(kinds) > 1:
        raise DataError(f"{where}: '{root}' mixes {', '.join(sorted(kinds))} files; set option 'kind'")
    return Source(kind=kinds.pop(), cells=cells, labels=labels, origin=str(root))


def glob_files(context: LoadContext, spec: dict[str, Any], where: str) -> Source:
    """Files matched by ``spec['glob']`` (relative to the data root), labelled by the regex ``spec['label']``
    (first group) on the file name; ``spec['group']`` likewise gives a group (speaker)."""
    pattern = str(spec["glob"])
    label_re = _regex(spec.get("label"), "label", where)
    group_re = _regex(spec.get("group"), "group", where) if spec.get("group") else None
    root, _, rest = _split_glob(pattern)
    base = context.resolve(root) if root else (context.data_root or context.task_dir or Path.cwd())
    files = sorted(p for p in base.glob(rest) if p.is_file())
    if not files:
        raise DataError(f"{where}: glob '{pattern}' matched no file under '{base}'")
    kinds = {kind_of(p) for p in files}
    if len(kinds) != 1 or None in kinds:
        raise DataError(
            f"{where}: glob '{pattern}' must match files of one media kind, got extensions {sorted({p.suffix for p in files})}"
        )
    labels, groups = [], []
    for path in files:
        labels.append(_match(label_re, path.name, "label", where))
        if group_re is not None:
            groups.append(_match(group_re, path.name, "group", where))
    return Source(kind=kinds.pop(), cells=[str(p) for p in files], labels=labels, groups=groups or None, origin=pattern)


def idx_pair(context: LoadContext, spec: dict[str, Any], where: str) -> Source:
    """Images and labels from IDX files (``idx_images``, ``idx_labels``), as uint8 arrays."""
    images = read_idx(context.resolve(spec["idx_images"]), where)
    labels = read_idx(context.resolve(spec["idx_labels"]), where)
    if images.ndim not in (3, 4) or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{where}: idx files disagree: images {images.shape}, labels {labels.shape}")
    return Source(kind="image", cells=images, labels=[str(int(v)) for v in labels], origin=str(spec["idx_images"]))


def read_idx(path: Path, where: str) -> np.ndarray:
    """An IDX file (magic 0 0 <type> <ndim>, big-endian int32 sizes, then the data), gzipped or not."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{where}: idx file '{path}' not found") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as error:
            raise DataError(f"{where}: '{path}' is a broken gzip file ({error})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{where}: '{path}' is not an IDX file (bad magic number)")
    ndim = raw[3]
    shape = tuple(int(v) for v in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - 4 - 4 * ndim != expected:
        raise DataError(f"{where}: '{path}' is truncated ({len(raw) - 4 - 4 * ndim} data bytes, header says {expected})")
    return np.frombuffer(raw, dtype=dtype, offset=4 + 4 * ndim).reshape(shape)


def read_source(context: LoadContext, spec: Any, where: str) -> Source:
    """Dispatch on the spec's keys: ``folders``, ``glob`` or ``idx_images``/``idx_labels``."""
    if not isinstance(spec, dict):
        raise ConfigError(f"{where}: a source is a mapping with 'folders', 'glob' or 'idx_images'+'idx_labels', got {spec!r}")
    allowed = {"folders", "kind", "glob", "label", "group", "idx_images", "idx_labels"}
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise ConfigError(f"{where}: unknown source key(s) {', '.join(unknown)}; valid: {', '.join(sorted(allowed))}")
    if "folders" in spec:
        root = context.resolve(spec["folders"])
        source = class_folders(root, spec.get("kind"), where)
        source.cells = [str(root / cell) for cell in source.cells]
        return source
    if "glob" in spec:
        if "label" not in spec:
            raise ConfigError(f"{where}: a glob source needs 'label', a regex whose first group is the label")
        return glob_files(context, spec, where)
    if "idx_images" in spec and "idx_labels" in spec:
        return idx_pair(context, spec, where)
    raise ConfigError(f"{where}: a source needs 'folders', 'glob' (+ 'label') or 'idx_images' + 'idx_labels'")


def array_column(values: np.ndarray) -> Any:
    """(N, ...) numbers as a nested fixed-size-list Arrow array (fast, no Python lists)."""
    import pyarrow as pa

    values = np.ascontiguousarray(values)
    array = pa.array(values.reshape(-1))
    for size in reversed(values.shape[1:]):
        array = pa.FixedSizeListArray.from_arrays(array, size)
    return array


def _split_glob(pattern: str) -> tuple[str, str, str]:
    """'a/b/*.wav' -> ('a/b', '/', '*.wav'): the literal folder part and the pattern part."""
    parts = Path(pattern).parts
    literal = []
    for part in parts:
        if any(ch in part for ch in "*?["):
            break
        literal.append(part)
    rest = parts[len(literal) :]
    return (str(Path(*literal)) if literal else "", "/", str(Path(*rest)) if rest else "*")


def _regex(value: Any, key: str, where: str) -> re.Pattern[str]:
    try:
        compiled = re.compile(str(value))
    except re.error as error:
        raise ConfigError(f"{where}: '{key}' is not a valid regex ({error})") from None
    if compiled.groups < 1:
        raise ConfigError(f"{where}: '{key}' regex needs a group, e.g. '^(\\d+)_'")
    return compiled


def _match(pattern: re.Pattern[str], name: str, key: str, where: str) -> str:
    found = pattern.search(name)
    if not found:
        raise DataError(f"{where}: file name '{name}' does not match the {key} regex '{pattern.pattern}'")
    return found.group(1)
