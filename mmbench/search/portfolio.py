"""Portfolio first: configurations that did well across tasks, enqueued before the sampler explores.

``portfolio.json`` beside this module is data written by ``benchmarks/portfolio.py`` from the runs of
suite searches (never typed by hand). Its entries name encoders by modality *kind*, so one entry
applies to any task whose modalities it covers (a kind it lacks is taken from the cheapest entry
that has it). For a task, :func:`portfolio_params` keeps the entries whose fusion and encoders are
in the task's (restricted) space, cheapest first, as Optuna parameter dicts; parameters outside the
space or fixed by ``--set`` are left to the sampler. :func:`enqueue_portfolio` queues them with
``skip_if_exists``, so a resumed study or a second worker does not run them twice.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.search.trials import encoder_prefix

if TYPE_CHECKING:
    import optuna

    from mmbench.data.schema import Schema
    from mmbench.registry import Registry
    from mmbench.search.trials import SearchSpace

PORTFOLIO_FILE = Path(__file__).with_name("portfolio.json")


@functools.cache
def load_portfolio(path: Path = PORTFOLIO_FILE) -> tuple[dict[str, Any], ...]:
    """The portfolio's entries, cheapest first (empty when the file is missing)."""
    if not path.exists():
        return ()
    entries = json.loads(path.read_text())["configs"]
    return tuple(sorted(entries, key=lambda e: float(e.get("seconds", 0.0))))


def portfolio_params(space: SearchSpace, schema: Schema, registry: Registry,
                     entries: Sequence[Mapping[str, Any]] | None = None) -> list[dict[str, Any]]:
    """Optuna parameter dicts of the portfolio entries valid for this space, cheapest first, no duplicates."""
    entries = load_portfolio() if entries is None else entries
    by_kind: dict[str, tuple[str, Mapping[str, Any]]] = {}
    for entry in entries:  # the cheapest entry with a kind supplies it to entries that lack it
        for kind, name in entry["encoders"].items():
            by_kind.setdefault(kind, (name, entry.get("encoder_params", {}).get(kind, {})))
    found: list[dict[str, Any]] = []
    for entry in entries:
        params = _entry_params(entry, space, schema, registry, by_kind)
        if params is not None and params not in found:
            found.append(params)
    return found


def _entry_params(entry: Mapping[str, Any], space: SearchSpace, schema: Schema, registry: Registry,
                  by_kind: Mapping[str, tuple[str, Mapping[str, Any]]]) -> dict[str, Any] | None:
    fusion = entry["fusion"]
    if fusion not in space.fusions:
        return None
    params: dict[str, Any] = {}
    _choice(params, space, "fusion", fusion, space.fusions)
    _hyper(params, space, registry.get_fusion(fusion).space, f"fusion.{fusion}", entry.get("fusion_params", {}))
    for modality, info in schema.modalities.items():
        if info.kind in entry["encoders"]:
            encoder, hyper = entry["encoders"][info.kind], entry.get("encoder_params", {}).get(info.kind, {})
        elif info.kind in by_kind:
            encoder, hyper = by_kind[info.kind]
        else:
            return None
        if encoder not in space.encoders[modality]:
            return None
        _choice(params, space, f"encoder.{modality}", encoder, space.encoders[modality])
        _hyper(params, space, registry.get_encoder(encoder).space, encoder_prefix(modality, encoder), hyper)
    _hyper(params, space, space.train_space, "train", entry.get("train", {}))
    if space.aux_choices and "train.aux" not in space.fixed:
        params["train.aux"] = "none"  # the portfolio's members are plain; the sampler explores auxiliary losses
    return params


def _choice(params: dict[str, Any], space: SearchSpace, name: str, value: str, candidates: Sequence[str]) -> None:
    if len(candidates) > 1 and name not in space.fixed:  # a single candidate is not an Optuna parameter
        params[name] = value


def _hyper(params: dict[str, Any], space: SearchSpace, declared: Mapping[str, Any], prefix: str, values: Mapping[str, Any]) -> None:
    for key, value in values.items():
        name, param = f"{prefix}.{key}", declared.get(key)
        if param is not None and name not in space.fixed and param.contains(value):
            params[name] = value


def enqueue_portfolio(study: optuna.Study, params: Sequence[Mapping[str, Any]]) -> int:
    """Queue each parameter dict once (skipped when the study already has it); returns how many were given."""
    for one in params:
        study.enqueue_trial(dict(one), skip_if_exists=True)
    return len(params)
