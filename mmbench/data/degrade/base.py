"""Seeded degradations of the data, configured in a task's ``data.degrade:`` block.

A benchmark whose modalities are each clean enough alone cannot show what fusion adds. These
operations make a modality harder on purpose (MultiBench's AV-MNIST removes most of the
images' PCA energy and adds noise to the audio). They run once when the data is prepared,
after splitting, with seeds derived from the task's split seed, and the block is part of the
fingerprint, so degraded and clean results never share a leaderboard row.

Each key of the block is a column name or a modality kind (meaning every column of that kind);
its value is a list of operations applied in order::

    data:
      degrade:
        image: [{op: pca, remove: 0.75}]
        audio: [{op: noise, snr_db: 0}, {op: bandlimit, high_hz: 1500}]
        Description: [{op: token_dropout, p: 0.3}]
        tabular: [{op: mask, p: 0.2}]

Operations (parameters and defaults):

* image: ``pca`` (``remove``: share of the variance removed by reconstructing every image from
  the fewest leading principal components, fitted on train, that keep ``1 - remove`` of it),
  ``blur`` (``sigma`` in pixels, Gaussian), ``occlude`` (``fraction`` of the area hidden by a
  square at a random place, filled with 0).
* audio: ``noise`` (white noise at ``snr_db`` decibels of signal-to-noise ratio per clip),
  ``bandlimit`` (``low_hz`` = 0 and ``high_hz``: frequencies outside are removed).
* text: ``token_dropout`` (each word dropped with probability ``p``).
* tabular: ``mask`` (each cell set missing with probability ``p``).

Every operation also takes ``seed`` (default: the split seed).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench.errors import ConfigError, unknown_name_message

if TYPE_CHECKING:
    import datasets

#: kind -> operation -> {parameter: (default or None if required, minimum, maximum)}
OPERATIONS: dict[str, dict[str, dict[str, tuple[float | None, float, float]]]] = {
    "image": {
        "pca": {"remove": (None, 0.0, 0.999)},
        "blur": {"sigma": (None, 0.0, 100.0)},
        "occlude": {"fraction": (None, 0.0, 1.0)},
    },
    "audio": {
        "noise": {"snr_db": (None, -60.0, 120.0)},
        "bandlimit": {"low_hz": (0.0, 0.0, 1e6), "high_hz": (None, 1.0, 1e6)},
    },
    "text": {"token_dropout": {"p": (None, 0.0, 1.0)}},
    "tabular": {"mask": {"p": (None, 0.0, 1.0)}},
}
_TABULAR = ("tabular", "numeric", "categorical")


def parse_degrade(block: Any, where: str) -> dict[str, list[dict[str, Any]]]:
    """Check the block's shape (targets, operation names, numeric parameters) without the data.

    Raises:
        ConfigError: naming ``where`` (the task file), the target and the operation.
    """
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: data.degrade must map columns or kinds to lists of operations, got {block!r}")
    known = {op for ops in OPERATIONS.values() for op in ops}
    parsed: dict[str, list[dict[str, Any]]] = {}
    for target, ops in block.items():
        if isinstance(ops, Mapping):
            ops = [ops]
        if not isinstance(target, str) or not isinstance(ops, list):
            raise ConfigError(f"{where}: data.degrade.{target} must be a list of operations like {{op: noise, snr_db: 0}}")
        parsed[target] = []
        for op in ops:
            name = op.get("op") if isinstance(op, Mapping) else None
            if name not in known:
                raise ConfigError(
                    f"{where}: data.degrade.{target}: {unknown_name_message('degradation', str(name), sorted(known))}"
                )
            kind = next(k for k, table in OPERATIONS.items() if name in table)
            params = OPERATIONS[kind][name]
            for key, value in op.items():
                if key in ("op", "seed"):
                    continue
                if key not in params:
                    raise ConfigError(
                        f"{where}: data.degrade.{target}.{name}: {unknown_name_message('parameter', key, [*params, 'seed'])}"
                    )
                low, high = params[key][1], params[key][2]
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
                    raise ConfigError(
                        f"{where}: data.degrade.{target}.{name}.{key} must be a number in [{low}, {high}], got {value!r}"
                    )
            missing = [key for key, (default, _, _) in params.items() if default is None and key not in op]
            if missing:
                raise ConfigError(f"{where}: data.degrade.{target}.{name} needs {', '.join(missing)}")
            if "seed" in op and (isinstance(op["seed"], bool) or not isinstance(op["seed"], int)):
                raise ConfigError(f"{where}: data.degrade.{target}.{name}.seed must be an integer")
            parsed[target].append({"op": name, **{k: d for k, (d, _, _) in params.items() if d is not None}, **op})
    return parsed


def degrade(
    splits: Mapping[str, datasets.Dataset], kinds: Mapping[str, str], block: Mapping[str, Any], *, seed: int
) -> dict[str, datasets.Dataset]:
    """Apply the block's operations to every split (fitting, e.g. PCA, on train only).

    Args:
        splits: train / validation / test.
        kinds: column -> kind of the columns in use (tabular sub-kinds allowed).
        block: the task's ``data.degrade``.
        seed: default seed (the split seed).

    Raises:
        ConfigError: a target that is no column or kind in use, or an operation that does not
            fit the target's kind.
    """
    out = dict(splits)
    for target, ops in parse_degrade(block, "data.degrade").items():
        columns = _targets(target, kinds)
        for index, op in enumerate(ops):
            kind = _kind_of(kinds[columns[0]])
            if op["op"] not in OPERATIONS[kind]:
                valid = ", ".join(OPERATIONS[kind])
                raise ConfigError(f"data.degrade.{target}: '{op['op']}' does not apply to {kind} columns; {kind} takes: {valid}")
            op_seed = int(op.get("seed", seed))
            if kind == "tabular":
                out = _each_split(out, lambda split, rng, c=columns, p=op["p"]: _mask(split, c, p, rng), op_seed, target, index)
                continue
            for column in columns:
                if kind == "image":
                    from mmbench.data.degrade.media import degrade_images

                    out = degrade_images(out, column, op, _rng_factory(op_seed, column, index))
                elif kind == "audio":
                    from mmbench.data.degrade.media import degrade_audio

                    out = degrade_audio(out, column, op, _rng_factory(op_seed, column, index))
                else:
                    out = _each_split(
                        out, lambda split, rng, c=column, p=op["p"]: _token_dropout(split, c, p, rng), op_seed, column, index
                    )
    return out


def _targets(target: str, kinds: Mapping[str, str]) -> list[str]:
    if target in kinds:
        return [target]
    columns = [c for c, k in kinds.items() if k == target or (target == "tabular" and k in _TABULAR)]
    if not columns:
        raise ConfigError(f"data.degrade: '{target}' is neither a column in use nor the kind of one; columns: {', '.join(kinds)}")
    return columns


def _kind_of(kind: str) -> str:
    if kind in _TABULAR:
        return "tabular"
    if kind not in OPERATIONS:
        raise ConfigError(f"data.degrade: no degradation for {kind} columns; available for {', '.join(OPERATIONS)}")
    return kind


def _rng_factory(seed: int, target: str, index: int) -> Any:
    """split name -> a generator unique to (seed, target, operation, split)."""
    return lambda split_name: np.random.default_rng([seed, zlib.crc32(target.encode()), index, zlib.crc32(split_name.encode())])


def _each_split(
    splits: Mapping[str, datasets.Dataset], apply: Any, seed: int, target: str, index: int
) -> dict[str, datasets.Dataset]:
    rng_for = _rng_factory(seed, target, index)
    return {name: apply(split, rng_for(name)) for name, split in splits.items()}


def _token_dropout(split: datasets.Dataset, column: str, p: float, rng: np.random.Generator) -> datasets.Dataset:
    from mmbench.data.bad_rows import replace_column

    kept = []
    for text in split[column]:
        if text is None:
            kept.append(None)
            continue
        words = str(text).split()
        keep = rng.random(len(words)) >= p
        kept.append(" ".join(w for w, k in zip(words, keep) if k))
    return replace_column(split, column, kept)


def _mask(split: datasets.Dataset, columns: list[str], p: float, rng: np.random.Generator) -> datasets.Dataset:
    import pyarrow as pa

    from mmbench.data.bad_rows import replace_column

    hidden = rng.random((split.num_rows, len(columns))) < p
    for index, column in enumerate(columns):
        array = split.with_format("arrow")[column]
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        keep = pa.array(~hidden[:, index])
        split = replace_column(split, column, pa.compute.if_else(keep, array, pa.scalar(None, type=array.type)))
    return split
