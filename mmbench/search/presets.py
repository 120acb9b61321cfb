"""Search presets (``--preset fast|medium|best``): documented bundles of space, fidelity and budget split.

The bundles are data (``presets.yaml`` beside this module), so the documentation's table
(:func:`presets_table`, pasted into ``docs/search.md`` and checked by a test) and the search read
the same thing. A preset only *narrows* what the task file allows; explicit flags (``--encoders``,
``--fusions``, ``--max-epochs``) replace it. Real-data tasks (suite ``real``) get ``medium`` by
default, the others none, so small synthetic tasks keep their full space.

Example:
    >>> get_preset("fast").fusions
    ('early', 'late')
    >>> narrow(("text.pretrained", "text.bow"), ["text.bow", "text.rnn"])
    ['text.bow']
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError, unknown_name_message

if TYPE_CHECKING:
    from mmbench.data.schema import Schema
    from mmbench.registry import Registry
    from mmbench.search.trials import SearchSpace
    from mmbench.tasks.files import Task

PRESETS_FILE = Path(__file__).with_name("presets.yaml")
#: ``--preset none``: no preset, the task file's space and fidelity as they are.
NO_PRESET = "none"
#: The preset of a task on real data when ``--preset`` is not given: every task but generated ones.
REAL_DATA_PRESET = "medium"
#: The provider (and suite) of generated tasks, which keep their own space and fidelity: their
#: trials take a second, and the suite compares fusions on them as the task files define them.
SYNTHETIC = "synthetic"


@dataclass(frozen=True)
class Preset:
    """One bundle (see ``presets.yaml`` for the meaning of each field)."""

    name: str
    description: str
    encoders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    fusions: tuple[str, ...] | None = None
    max_epochs: int | None = None
    patience: int | None = None
    stages: Mapping[str, float] = field(default_factory=dict)
    portfolio: bool = True


@functools.cache
def load_presets() -> dict[str, Preset]:
    """Every preset of ``presets.yaml``, by name."""
    import yaml

    raw: dict[str, Any] = yaml.safe_load(PRESETS_FILE.read_text())
    return {
        name: Preset(
            name=name,
            description=entry["description"],
            encoders={kind: tuple(names) for kind, names in (entry.get("encoders") or {}).items()},
            fusions=tuple(entry["fusions"]) if entry.get("fusions") else None,
            max_epochs=entry.get("max_epochs"),
            patience=entry.get("patience"),
            stages=dict(entry.get("stages") or {}),
            portfolio=bool(entry.get("portfolio", True)),
        )
        for name, entry in raw.items()
    }


def check_preset_name(name: str | None) -> None:
    """Raise :class:`ConfigError` for a name that is neither a preset nor ``none``."""
    if name is not None and name != NO_PRESET and name not in load_presets():
        raise ConfigError(f"--preset: {unknown_name_message('preset', name, [*load_presets(), NO_PRESET])}")


def get_preset(name: str) -> Preset | None:
    """The preset called ``name`` (``None`` for ``none``).

    Raises:
        ConfigError: an unknown name, listing the valid ones.
    """
    check_preset_name(name)
    return None if name == NO_PRESET else load_presets()[name]


def preset_for(task: Task, name: str | None) -> Preset | None:
    """The preset asked for, else the default for the task: ``medium`` on real data (a user's own
    task file included), none on a generated task (the ``synthetic`` provider or suite)."""
    from mmbench.tasks.suites import suites_of

    if name is None:
        generated = task.provider == SYNTHETIC or SYNTHETIC in suites_of(task)
        name = NO_PRESET if generated else REAL_DATA_PRESET
    return get_preset(name)


def narrow(preferred: Sequence[str] | None, allowed: Sequence[str]) -> list[str]:
    """``allowed`` cut down to ``preferred`` (its order); all of ``allowed`` when nothing is left."""
    if not preferred:
        return list(allowed)
    kept = [name for name in preferred if name in allowed]
    return kept or list(allowed)


def narrow_space(space: SearchSpace, preset: Preset, schema: Schema, *, fusions_given: bool,
                 encoders_given: Mapping[str, Sequence[str]]) -> None:
    """Narrow a built space to the preset's choices, in place, except where a flag chose explicitly."""
    if not fusions_given:
        space.fusions = narrow(preset.fusions, space.fusions)
    for modality, info in schema.modalities.items():
        if modality in encoders_given or info.kind in encoders_given:
            continue
        space.encoders[modality] = narrow(preset.encoders.get(info.kind), space.encoders[modality])


def freeze_pretrained(space: SearchSpace, registry: Registry) -> list[str]:
    """Search every encoder that can fine-tune (a ``finetune`` hyperparameter) frozen, in place.

    Under a preset the search trains heads on cached features, a few seconds a trial; training a
    transformer end to end costs minutes an epoch on a CPU (74 s for MiniLM on PetFinder, 2 cores)
    and would eat a ``--time-limit`` alone. Fine-tuning is the later stage's job
    (:func:`mmbench.search.stages.finetune_stage`), on the best frozen configuration. A value the
    user fixed (``--set encoder.text.pretrained.finetune=true``) is kept.

    Returns:
        The fixed parameter names this added.
    """
    from mmbench.search.trials import encoder_prefix

    added = []
    for modality, names in space.encoders.items():
        for name in names:
            key = f"{encoder_prefix(modality, name)}.finetune"
            if "finetune" in registry.get_encoder(name).space and key not in space.fixed:
                space.fixed[key] = False
                added.append(key)
    return added


def presets_table() -> str:
    """The presets as a Markdown table (the one in ``docs/search.md``)."""
    lines = ["| preset | encoders tried (by kind) | fusions | epochs / patience | budget split (search / fine-tune / ensemble) |",
             "|---|---|---|---|---|"]
    for preset in load_presets().values():
        encoders = "; ".join(f"{kind}: {', '.join(names)}" for kind, names in preset.encoders.items()) or "all"
        fidelity = f"{preset.max_epochs or 'task'} / {preset.patience or 'task'}"
        split = " / ".join(f"{preset.stages.get(s, 0):.2f}" for s in ("search", "finetune", "ensemble"))
        lines.append(f"| `{preset.name}` | {encoders} | {', '.join(preset.fusions or ['all'])} | {fidelity} | {split} |")
    return "\n".join(lines) + "\n"
