"""A stable hash of data content + schema + split: two results are comparable only if equal."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import datasets


def fingerprint(splits: Mapping[str, datasets.Dataset], schema: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> str:
    """Hash every cell of every split, the schema and any extra settings (degradations, seeds).

    Args:
        splits: split name -> dataset (hashed in name order).
        schema: the schema as a dict.
        extra: further settings that change the data seen by models.

    Returns:
        16 hex digits.
    """
    import pyarrow as pa

    digest = hashlib.sha256()
    digest.update(json.dumps({"schema": schema, "extra": extra or {}}, sort_keys=True, default=str).encode())
    for name in sorted(splits):
        table = splits[name].data.table if hasattr(splits[name].data, "table") else splits[name].data
        digest.update(name.encode())
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, table.schema) as writer:
            for batch in table.combine_chunks().to_batches():
                writer.write_batch(batch)
        digest.update(sink.getvalue().to_pybytes())
    return digest.hexdigest()[:16]
