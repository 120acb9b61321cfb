"""The :class:`Preprocessor` contract: raw column values -> tensors, fitted on train, done once.

The class lives apart from the built-in preprocessors and the registry lookup
(:mod:`mmbench.data.preprocess.base`), so the component and modality-kind contracts can name it
without importing the registry (which imports them): no import cycle, annotations included.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

import torch

from mmbench.data.schema import ModalityInfo

if TYPE_CHECKING:
    import datasets

Tensors = dict[str, torch.Tensor]


class Preprocessor(ABC):
    """Turns one modality's columns into tensors.

    Args:
        info: the modality as described by the schema (before fitting).
    """

    def __init__(self, info: ModalityInfo) -> None:
        self.info = info

    @property
    def key(self) -> str:
        """Everything that changes the output; two preprocessors with one key are interchangeable."""
        options = ",".join(f"{k}={v}" for k, v in sorted(self.options().items()))
        return f"{type(self).__module__}.{type(self).__qualname__}({options})"

    def options(self) -> dict[str, object]:
        """The settings that, with the class, determine the output (used in :attr:`key`)."""
        return {}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        """Learn what needs the training split; return the info completed for encoders."""
        return self.info

    @abstractmethod
    def transform(self, split: datasets.Dataset) -> Tensors:
        """Turn a split into tensors whose first dimension is the row."""
