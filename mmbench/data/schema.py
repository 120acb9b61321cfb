"""Modality kinds and the typed schema that travels with the data.

A :class:`Schema` says which columns form which modality, which column is the label, the task
type and the classes. Each modality carries a :class:`ModalityInfo` with what an encoder needs
to size itself (vocabulary size, image shape, sample rate, feature counts), so encoders are
built from the schema alone.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mmbench.errors import ConfigError

#: Task types the trainer knows how to fit and score.
TASK_TYPES: tuple[str, ...] = ("classification", "multilabel", "regression")


@dataclass(frozen=True)
class ModalityInfo:
    """What an encoder needs to know about one modality.

    Fields that do not apply to a kind stay ``None``. Preprocessing fills the data-dependent
    ones (e.g. ``vocab_size`` after a tokenizer is fitted on the training split).

    Attributes:
        name: the modality's name in the task (``"text"``, ``"image"``, or a column name when
            a task has two modalities of one kind).
        kind: a registered modality kind (:class:`mmbench.ModalityKind`; ``mmbench plugins``
            lists them).
        columns: the data columns this modality reads.
        dim: feature size of an ``embedding`` modality.
        seq_len: sequence length (tokens, embedding steps).
        vocab_size: vocabulary size for token ids (text).
        channels: image/video channels.
        image_size: ``(height, width)`` of images or video frames.
        n_frames: frames per video clip.
        sample_rate: audio samples per second.
        n_samples: audio samples per clip after crop/pad.
        n_numeric: numeric tabular features.
        cardinalities: number of categories (unknown included) per categorical feature.
        extra: free-form facts a plugin adds for its own encoders.
    """

    name: str
    kind: str
    columns: tuple[str, ...] = ()
    dim: int | None = None
    seq_len: int | None = None
    vocab_size: int | None = None
    channels: int | None = None
    image_size: tuple[int, int] | None = None
    n_frames: int | None = None
    sample_rate: int | None = None
    n_samples: int | None = None
    n_numeric: int | None = None
    cardinalities: tuple[int, ...] | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Which kinds exist is the registry's knowledge (plugins add kinds); the data layer checks
        # a task's kinds against it, so here only the form is checked.
        if not isinstance(self.kind, str) or not self.kind:
            raise ConfigError(f"modality '{self.name}': kind must be a non-empty name, got {self.kind!r}")

    def with_updates(self, **changes: Any) -> ModalityInfo:
        """A copy with some fields replaced (the info is immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (tuples become lists)."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(self).items()}


@dataclass(frozen=True)
class Schema:
    """The typed description of a multimodal data set.

    Attributes:
        modalities: modality name -> info, in a stable order.
        label: the label column.
        task_type: one of :data:`TASK_TYPES`.
        classes: class names, index = integer label (multilabel: label names, index = output; empty for regression).
        target_scale: ``(mean, std)`` of a regression target on train: models predict the
            standardised target and :class:`~mmbench.train.model.MultimodalModel` scales it back.
    """

    modalities: Mapping[str, ModalityInfo]
    label: str
    task_type: str = "classification"
    classes: tuple[str, ...] = ()
    target_scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if not self.modalities:
            raise ConfigError("schema has no modality")
        if self.task_type not in TASK_TYPES:
            raise ConfigError(f"unknown task type '{self.task_type}'; available: {', '.join(TASK_TYPES)}")
        if self.task_type == "classification" and len(self.classes) < 2:
            raise ConfigError(f"label '{self.label}' has {len(self.classes)} class(es); classification needs at least 2")

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_outputs(self) -> int:
        """Width of the model's output: one per class, or one for a regression target."""
        return 1 if self.task_type == "regression" else len(self.classes)

    def with_modality(self, info: ModalityInfo) -> Schema:
        """A copy with one modality's info replaced."""
        modalities = dict(self.modalities)
        modalities[info.name] = info
        return dataclasses.replace(self, modalities=modalities)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "task_type": self.task_type,
            "classes": list(self.classes),
            **({"target_scale": list(self.target_scale)} if self.target_scale else {}),
            "modalities": {name: info.to_dict() for name, info in self.modalities.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Schema:
        """Inverse of :meth:`to_dict`."""
        modalities = {}
        for name, raw in data["modalities"].items():
            fields = {k: (tuple(v) if isinstance(v, list) else v) for k, v in raw.items()}
            modalities[name] = ModalityInfo(**fields)
        return cls(
            modalities=modalities,
            label=data["label"],
            task_type=data.get("task_type", "classification"),
            classes=tuple(data.get("classes", ())),
            target_scale=tuple(data["target_scale"]) if data.get("target_scale") else None,
        )
