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

Each operation belongs to a modality kind (:attr:`mmbench.ModalityKind.degradations`): the
registry is asked which operations the target column's kind offers, the kind's plugin applies
them. The built-in kinds offer (parameters and defaults):

* image: ``pca`` (``remove``: share of the variance removed by reconstructing every image from
  the fewest leading principal components, fitted on train, that keep ``1 - remove`` of it),
  ``blur`` (``sigma`` in pixels, Gaussian), ``occlude`` (``fraction`` of the area hidden by a
  square at a random place, filled with 0).
* audio: ``noise`` (white noise at ``snr_db`` decibels of signal-to-noise ratio per clip),
  ``bandlimit`` (``low_hz`` = 0 and ``high_hz``: frequencies outside are removed).
* text: ``token_dropout`` (each word dropped with probability ``p``).
* tabular (numeric and categorical columns): ``mask`` (each cell set to the kind's missing value
  with probability ``p``).

Every operation also takes ``seed`` (default: the split seed).
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench.data.kinds import kind_name
from mmbench.errors import ConfigError, unknown_name_message

if TYPE_CHECKING:
    import datasets

    from mmbench.modalities import Degradation


def operations() -> dict[str, Mapping[str, Degradation]]:
    """Kind -> operation name -> :class:`~mmbench.Degradation`, for every registered kind that offers some."""
    from mmbench.registry import get_registry

    registry = get_registry()
    tables = {name: registry.get_kind(name).degradations for name in registry.list_kinds()}
    return {name: table for name, table in tables.items() if table}


def parse_degrade(block: Any, where: str) -> dict[str, list[dict[str, Any]]]:
    """Check the block's shape (targets, operation names, numeric parameters) without the data.

    Raises:
        ConfigError: naming ``where`` (the task file), the target and the operation.
    """
    if not isinstance(block, Mapping):
        raise ConfigError(f"{where}: data.degrade must map columns or kinds to lists of operations, got {block!r}")
    tables = operations()
    known = {op for ops in tables.values() for op in ops}
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
            params = _operation(tables, target, name).params
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


def _operation(tables: Mapping[str, Mapping[str, Degradation]], target: str, name: str) -> Degradation:
    """Operation ``name`` of the kind ``target`` names if it offers it, else of the first kind that does
    (a column target's kind is known only with the data; :func:`degrade` checks it fits)."""
    own = tables.get(kind_name(target), {})
    return own[name] if name in own else next(table[name] for table in tables.values() if name in table)


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
    tables = operations()
    out = dict(splits)
    for target, ops in parse_degrade(block, "data.degrade").items():
        columns = _targets(target, kinds)
        for index, op in enumerate(ops):
            kind = kind_name(kinds[columns[0]])
            if kind not in tables:
                raise ConfigError(f"data.degrade: no degradation for {kind} columns; available for {', '.join(tables)}")
            if op["op"] not in tables[kind]:
                valid = ", ".join(tables[kind])
                raise ConfigError(f"data.degrade.{target}: '{op['op']}' does not apply to {kind} columns; {kind} takes: {valid}")
            operation = tables[kind][op["op"]]
            op_seed = int(op.get("seed", seed))
            if not operation.per_column:
                out = operation.apply(out, columns, op, _rng_factory(op_seed, target, index))
                continue
            for column in columns:
                out = operation.apply(out, [column], op, _rng_factory(op_seed, column, index))
    return out


def _targets(target: str, kinds: Mapping[str, str]) -> list[str]:
    if target in kinds:
        return [target]
    columns = [c for c, k in kinds.items() if target in (k, kind_name(k))]
    if not columns:
        raise ConfigError(f"data.degrade: '{target}' is neither a column in use nor the kind of one; columns: {', '.join(kinds)}")
    return columns


def _rng_factory(seed: int, target: str, index: int) -> Any:
    """split name -> a generator unique to (seed, target, operation, split)."""
    return lambda split_name: np.random.default_rng([seed, zlib.crc32(target.encode()), index, zlib.crc32(split_name.encode())])
