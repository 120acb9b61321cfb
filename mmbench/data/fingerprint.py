"""A stable hash of data content + schema + split: two results are comparable only if equal."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets


def fingerprint(
    splits: Mapping[str, datasets.Dataset],
    schema: Mapping[str, Any],
    extra: Mapping[str, Any] | None = None,
    *,
    files: Sequence[str] = (),
) -> str:
    """Hash every cell of every split, the schema and any extra settings (degradations, seeds).

    Args:
        splits: split name -> dataset (hashed in name order).
        schema: the schema as a dict.
        extra: further settings that change the data seen by models.
        files: columns of file paths: hashed by the files' content (not the path), so the
            fingerprint follows an edited image and ignores where the data folder lives.

    Returns:
        16 hex digits.
    """
    import pyarrow as pa

    digest = hashlib.sha256()
    digest.update(json.dumps({"schema": schema, "extra": extra or {}}, sort_keys=True, default=str).encode())
    for name in sorted(splits):
        split = splits[name].flatten_indices() if getattr(splits[name], "_indices", None) is not None else splits[name]
        if files:
            split = _with_file_digests(split, files)
        table = split.data.table if hasattr(split.data, "table") else split.data
        table = table.replace_schema_metadata(None)  # datasets' own cache fingerprint lives there
        digest.update(name.encode())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.combine_chunks().to_batches():
                writer.write_batch(batch)
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()[:16]


def _with_file_digests(split: datasets.Dataset, columns: Sequence[str]) -> datasets.Dataset:
    """``split`` with each path cell of ``columns`` replaced by the SHA-1 of the file's bytes."""
    from mmbench.data.bad_rows import replace_column
    from mmbench.data.media import file_digest

    for column in columns:
        if column in split.column_names:
            paths = split[column]
            split = replace_column(split, column, [file_digest(p) if isinstance(p, str) else None for p in paths])
    return split
