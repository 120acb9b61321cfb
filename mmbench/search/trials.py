"""The search space over combinations, and the resolved configuration of one trial.

The space is the union of: the fusion choice (``fusion``), an encoder choice per modality
(``encoder.<modality>``), each chosen component's hyperparameters under a prefix
(``fusion.tfn.rank``, ``encoder.text.gru.hidden``) and training parameters (``train.lr``...).
Only the chosen components' parameters are suggested, so the space is conditional.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from mmbench.errors import ConfigError, unknown_name_message
from mmbench.search.validate import check_fixed_value
from mmbench.space import Categorical, Float, Int, Param, suggest_space

if TYPE_CHECKING:
    import optuna

    from mmbench.data.schema import Schema
    from mmbench.registry import Registry

#: Training hyperparameters searched by default.
TRAIN_SPACE: dict[str, Param] = {
    "lr": Float(3e-4, 3e-2, log=True),
    "weight_decay": Float(1e-6, 1e-2, log=True),
    "batch_size": Categorical([32, 64, 128]),
}

#: Training parameters searched on regression tasks only (:func:`mmbench.train.loop.task_loss`).
REGRESSION_TRAIN_SPACE: dict[str, Param] = {"loss": Categorical(["mse", "huber"])}
#: Searched on classification tasks whose train classes are imbalanced (:data:`IMBALANCE_RATIO`).
CLASS_WEIGHT_SPACE: dict[str, Param] = {"class_weight": Categorical(["none", "balanced"])}
#: largest over smallest class count on train from which class weighting is searched
IMBALANCE_RATIO = 2.0

#: Weight of the auxiliary loss, searched only when ``train.aux`` is not ``none``.
AUX_SPACE: dict[str, Param] = {"aux_weight": Float(0.01, 1.0, log=True)}
#: Auxiliary settings that ``--set`` may fix but the search leaves at their defaults.
AUX_SETTINGS: tuple[str, ...] = ("aux_dim", "aux_margin", "aux_temperature")


@dataclass
class TrialConfig:
    """Everything needed to rebuild and retrain one trial's model.

    Attributes:
        fusion: the fusion's name.
        fusion_params: its hyperparameters.
        encoders: modality -> encoder name.
        encoder_params: modality -> that encoder's hyperparameters.
        train: training settings (``lr``, ``weight_decay``, ``batch_size``, ``max_epochs``, ``patience``...).
        seed: the seed of model initialisation and batch order.
    """

    fusion: str
    fusion_params: dict[str, Any]
    encoders: dict[str, str]
    encoder_params: dict[str, dict[str, Any]]
    train: dict[str, Any]
    seed: int = 0

    @property
    def combination(self) -> str:
        """``"early | image=image.cnn, text=text.gru"``: the leaderboard's row key."""
        encoders = ", ".join(f"{m}={e}" for m, e in sorted(self.encoders.items()))
        return f"{self.fusion} | {encoders}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialConfig:
        try:
            return cls(**{key: data[key] for key in ("fusion", "fusion_params", "encoders", "encoder_params", "train")}, seed=int(data.get("seed", 0)))
        except (KeyError, TypeError) as error:
            raise ConfigError(f"not a trial configuration: missing or bad key ({error})") from None

    def flat_params(self) -> dict[str, Any]:
        """The configuration under the search's parameter names (logged as MLflow params)."""
        flat: dict[str, Any] = {"fusion": self.fusion}
        flat.update({f"fusion.{self.fusion}.{k}": v for k, v in self.fusion_params.items()})
        for modality, encoder in self.encoders.items():
            flat[f"encoder.{modality}"] = encoder
            prefix = encoder_prefix(modality, encoder)
            flat.update({f"{prefix}.{k}": v for k, v in self.encoder_params[modality].items()})
        flat.update({f"train.{k}": v for k, v in self.train.items()})
        flat["seed"] = self.seed
        return flat


def encoder_prefix(modality: str, encoder: str) -> str:
    """Parameter prefix of an encoder: ``encoder.text.gru`` for encoder ``text.gru`` on modality
    ``text``; ``encoder.front.cnn`` for ``image.cnn`` on a modality named ``front``."""
    short = encoder.split(".", 1)[1] if "." in encoder else encoder
    return f"encoder.{modality}.{short}"


@dataclass
class SearchSpace:
    """The candidates and fixed values of one search.

    Attributes:
        fusions: fusion names to choose from.
        encoders: modality -> encoder names to choose from.
        train_space: training hyperparameters to search (names without ``train.``).
        fixed: full parameter name -> value, used instead of searching.
        train_defaults: training settings that are not searched (``max_epochs``, ``patience``).
        aux_choices: auxiliary objectives to choose from (``train.aux``); empty: none is searched.
    """

    fusions: list[str]
    encoders: dict[str, list[str]]
    train_space: dict[str, Param] = field(default_factory=lambda: dict(TRAIN_SPACE))
    fixed: dict[str, Any] = field(default_factory=dict)
    train_defaults: dict[str, Any] = field(default_factory=dict)
    aux_choices: list[str] = field(default_factory=list)

    def suggest(self, trial: optuna.Trial, registry: Registry, *, seed: int) -> TrialConfig:
        """Draw one configuration; only the chosen components' parameters are suggested."""
        fusion = self._choose(trial, "fusion", self.fusions)
        fusion_params = suggest_space(trial, registry.get_fusion(fusion).space, f"fusion.{fusion}", self.fixed)
        encoders: dict[str, str] = {}
        encoder_params: dict[str, dict[str, Any]] = {}
        for modality, candidates in self.encoders.items():
            encoders[modality] = self._choose(trial, f"encoder.{modality}", candidates)
            space = registry.get_encoder(encoders[modality]).space
            encoder_params[modality] = suggest_space(trial, space, encoder_prefix(modality, encoders[modality]), self.fixed)
        train = dict(self.train_defaults)
        train.update(suggest_space(trial, self.train_space, "train", self.fixed))
        train.update({k[len("train."):]: v for k, v in self.fixed.items() if k.startswith("train.") and k[len("train."):] not in self.train_space})
        if self.aux_choices:  # aux_weight only means something when an objective is chosen
            train["aux"] = self._choose(trial, "train.aux", self.aux_choices)
            if train["aux"] != "none":
                train.update(suggest_space(trial, AUX_SPACE, "train", self.fixed))
        return TrialConfig(fusion, fusion_params, encoders, encoder_params, train, seed=seed)

    def _choose(self, trial: optuna.Trial, name: str, candidates: Sequence[str]) -> str:
        if name in self.fixed:
            return self.fixed[name]
        if len(candidates) == 1:  # not a decision: keeps a restricted space numeric-only (cmaes) and grids small
            return candidates[0]
        return trial.suggest_categorical(name, list(candidates))

    def signature(self) -> str:
        """A hash of the space; resuming a study with another space is refused."""
        described = {
            "fusions": sorted(self.fusions),
            "encoders": {m: sorted(e) for m, e in sorted(self.encoders.items())},
            "train": {k: repr(v) for k, v in sorted(self.train_space.items())},
            "fixed": {k: repr(v) for k, v in sorted(self.fixed.items())},
        }
        if self.aux_choices:
            described["aux"] = list(self.aux_choices)
        return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()[:16]


def build_search_space(
    schema: Schema,
    registry: Registry,
    *,
    fusions: Sequence[str] | None = None,
    encoders: Mapping[str, Sequence[str]] | None = None,
    fixed: Mapping[str, Any] | None = None,
    train_defaults: Mapping[str, Any] | None = None,
) -> SearchSpace:
    """The space for a data set's schema, restricted by task file and CLI.

    Args:
        schema: the data's schema (its modalities decide which encoders apply).
        registry: the loaded plugins.
        fusions: allowed fusion names (default: every fusion that accepts this many modalities).
        encoders: modality (name or kind) -> allowed encoder names (default: all of that kind).
        fixed: parameter name -> value not to be searched (``train.lr``, ``fusion.tfn.rank``).
        train_defaults: non-searched training settings.

    Raises:
        ConfigError: an unknown or inapplicable fusion/encoder/parameter, or a modality with
            no encoder.
    """
    n_modalities = len(schema.modalities)
    if fusions:
        for name in fusions:
            cls = registry.get_fusion(name)
            if cls.min_modalities > n_modalities:
                raise ConfigError(f"fusion '{name}' needs {cls.min_modalities} modalities; this task has {n_modalities}")
        chosen_fusions = list(dict.fromkeys(fusions))
    else:
        chosen_fusions = [n for n in registry.list_fusions() if registry.get_fusion(n).min_modalities <= n_modalities]
    if not chosen_fusions:
        raise ConfigError("no fusion strategy is available; install or enable a fusion plugin")
    restrictions = dict(encoders or {})
    chosen_encoders: dict[str, list[str]] = {}
    for modality, info in schema.modalities.items():
        allowed = restrictions.pop(modality, None) or restrictions.get(info.kind)
        if allowed:
            for name in allowed:
                cls = registry.get_encoder(name)
                if cls.modality != info.kind:
                    raise ConfigError(f"encoder '{name}' reads {cls.modality}, but modality '{modality}' is {info.kind}")
                reason = cls.unavailable_reason()
                if reason:
                    raise ConfigError(f"encoder '{name}' is not available: {reason}")
            chosen_encoders[modality] = list(dict.fromkeys(allowed))
        else:
            # encoders that cannot run here (no checkpoint configured) are left out, not failed per trial
            chosen_encoders[modality] = [
                name for name in registry.list_encoders(modality=info.kind) if registry.get_encoder(name).unavailable_reason() is None
            ]
        if not chosen_encoders[modality]:
            raise ConfigError(f"no available encoder plugin reads modality '{modality}' ({info.kind}); install or enable one")
    kinds = {info.kind for info in schema.modalities.values()}
    for key in restrictions:
        if key not in kinds:
            raise ConfigError(f"encoders: {unknown_name_message('modality', key, list(schema.modalities) + sorted(kinds))}")
    from mmbench.train.auxiliary import AUX_CHOICES  # searched on tasks with two or more modalities

    space = SearchSpace(chosen_fusions, chosen_encoders, fixed=dict(fixed or {}), train_defaults=dict(train_defaults or {}),
                        aux_choices=list(AUX_CHOICES) if n_modalities >= 2 else [])
    if schema.task_type == "regression":
        space.train_space.update(REGRESSION_TRAIN_SPACE)
    _check_fixed(space, registry)
    return space


def _check_fixed(space: SearchSpace, registry: Registry) -> None:
    """Fail early on a ``--set`` name that matches no parameter of the space."""
    known: dict[str, Param | None] = {"fusion": None}
    known.update({f"train.{k}": v for k, v in space.train_space.items()})
    known.update({f"train.{k}": None for k in ("max_epochs", "patience", "grad_clip", "class_weight")})
    if space.aux_choices:
        known.update({"train.aux": Categorical(space.aux_choices), **{f"train.{k}": v for k, v in AUX_SPACE.items()}})
        known.update({f"train.{k}": None for k in AUX_SETTINGS})
    elif any(name.startswith("train.aux") for name in space.fixed):
        raise ConfigError("--set train.aux*: auxiliary objectives align modalities; this task has only one")
    for fusion in space.fusions:
        known.update({f"fusion.{fusion}.{k}": v for k, v in registry.get_fusion(fusion).space.items()})
    for modality, candidates in space.encoders.items():
        known[f"encoder.{modality}"] = None
        for encoder in candidates:
            prefix = encoder_prefix(modality, encoder)
            known.update({f"{prefix}.{k}": v for k, v in registry.get_encoder(encoder).space.items()})
    for name, value in space.fixed.items():
        if name not in known:
            raise ConfigError(unknown_name_message("parameter", name, known))
        check_fixed_value(name, value, f"--set {name}")
        param = known[name]
        if isinstance(param, (Int, Float)) and isinstance(value, (int, float)) and not isinstance(value, bool):
            continue
        if param is not None and not param.contains(value):
            raise ConfigError(f"--set {name}={value!r} refused: got the {type(value).__name__} {value!r}, "
                              f"expected a value of {param.describe()}")
    if space.fixed.get("fusion", space.fusions[0]) not in space.fusions:
        raise ConfigError(f"--set fusion={space.fixed['fusion']}: not among the allowed fusions {', '.join(space.fusions)}")


def parse_assignments(items: Sequence[str]) -> dict[str, Any]:
    """Parse ``["train.lr=1e-3", "fusion=early"]`` into a dict, values read as YAML scalars.

    Numbers are read as Python writes them, so ``1e-3``, ``1.0e12`` and ``1_000`` are numbers
    (YAML 1.1 reads the first two as strings and the last as a string or an int by parser).

    Example:
        >>> parse_assignments(["train.lr=1e-3", "train.batch_size=1_000", "fusion=early"])
        {'train.lr': 0.001, 'train.batch_size': 1000, 'fusion': 'early'}
    """
    import yaml

    fixed: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"--set expects NAME=VALUE, got {item!r}")
        if _NUMBER.fullmatch(text.strip()):
            number = text.strip()
            fixed[name.strip()] = int(number) if _INTEGER.fullmatch(number) else float(number)
            continue
        try:
            fixed[name.strip()] = yaml.safe_load(text)
        except yaml.YAMLError:
            fixed[name.strip()] = text
    return fixed


_INTEGER = re.compile(r"[+-]?\d(?:_?\d)*")
_NUMBER = re.compile(r"[+-]?(?:\d(?:_?\d)*(?:\.(?:\d(?:_?\d)*)?)?|\.\d(?:_?\d)*)(?:[eE][+-]?\d(?:_?\d)*)?")
