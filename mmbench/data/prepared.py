"""Split, typed data plus the tensor cache every trial of a search shares (in memory, or spilled to disk past the budget)."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from mmbench.data.preprocess.base import Preprocessor, Tensors
from mmbench.data.provider import SPLITS
from mmbench.data.schema import ModalityInfo, Schema
from mmbench.data.storage.spill import SpillFolder, bytes_per_row, is_spilled, memory_budget

if TYPE_CHECKING:
    import datasets
    import numpy as np


@dataclass
class SplitTensors:
    """One split as tensors: per-modality inputs and integer labels."""

    inputs: dict[str, Tensors]
    labels: torch.Tensor

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, index: torch.Tensor) -> tuple[dict[str, Tensors], torch.Tensor]:
        """The rows at ``index`` (a batch)."""
        inputs = {name: {key: value[index] for key, value in tensors.items()} for name, tensors in self.inputs.items()}
        return inputs, self.labels[index]

    def take(self, index: torch.Tensor) -> SplitTensors:
        """The rows at ``index`` as a split of their own (in memory, also for spilled rows)."""
        return SplitTensors(*self.select(index))

    @property
    def streamed(self) -> list[str]:
        """Modalities whose inputs live in spill files (:mod:`mmbench.data.storage.spill`): their batches read from disk."""
        return [name for name, tensors in self.inputs.items() if any(is_spilled(value) for value in tensors.values())]


@dataclass
class PreparedData:
    """A task's data, ready for trials.

    Attributes:
        splits: train / validation / test as Hugging Face datasets.
        schema: modalities, label and classes (infos not yet fitted by a preprocessor).
        fingerprint: hash of content + schema + split; recorded on every run.
        split_sizes: rows per split.
        notes: facts from loading (e.g. skipped rows), logged on the run.
        memory_budget: bytes of preprocessed tensors kept in memory; a modality that would go past
            it is spilled to memory-mapped files (:mod:`mmbench.data.storage.spill`). ``None``: the default
            budget (``$MMBENCH_MEMORY_BUDGET_GB`` or half the available memory), read when first needed.
        folds: ``split.folds``: each fold's validation rows, as positions in train rows then
            validation rows (:func:`fold_splits`); empty without k-fold.
    """

    splits: Mapping[str, datasets.Dataset]
    schema: Schema
    fingerprint: str
    split_sizes: Mapping[str, int]
    notes: dict[str, Any] = field(default_factory=dict)
    memory_budget: int | None = None
    folds: tuple[np.ndarray, ...] = ()
    _resident_bytes: float = field(default=0.0, repr=False)
    _spill: SpillFolder = field(default_factory=SpillFolder, repr=False)
    _cache: dict[tuple[str, str], tuple[ModalityInfo, dict[str, Tensors]]] = field(default_factory=dict, repr=False)
    _labels: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # concurrent trials preprocess once

    def labels(self, split: str) -> torch.Tensor:
        """Class indices of a split, as a ``long`` tensor (a regression target: ``float`` values;
        multi-label: ``(N, n_labels)`` multi-hot ``float``)."""
        if split not in self._labels and self.schema.task_type == "regression":
            self._labels[split] = torch.tensor(self.splits[split][self.schema.label], dtype=torch.float32)
        if split not in self._labels and self.schema.task_type == "multilabel":
            self._labels[split] = multi_hot(self.splits[split][self.schema.label], self.schema.classes)
        if split not in self._labels:
            index = {name: i for i, name in enumerate(self.schema.classes)}
            values = self.splits[split][self.schema.label]
            self._labels[split] = torch.tensor([index[str(v)] for v in values], dtype=torch.long)
        return self._labels[split]

    def modality(self, name: str, preprocessor: Preprocessor) -> tuple[ModalityInfo, dict[str, Tensors]]:
        """Fit ``preprocessor`` on train and transform every split, once per preprocessing key.

        Returns:
            The fitted modality info and split -> tensors.
        """
        cache_key = (name, preprocessor.key)
        with self._lock:  # the members of a batch (--batch-trials) or --n-jobs threads ask at once
            if cache_key not in self._cache:
                self._cache[cache_key] = self._preprocess(name, preprocessor)
            return self._cache[cache_key]

    def _preprocess(self, name: str, preprocessor: Preprocessor) -> tuple[ModalityInfo, dict[str, Tensors]]:
        info = preprocessor.fit(self.splits["train"])
        size = bytes_per_row(preprocessor, self.splits["train"]) * sum(self.split_sizes.values())
        if self.reserve(size):
            return info, {split: preprocessor.transform(self.splits[split]) for split in SPLITS}
        prefix = f"{name}-{_short_hash(preprocessor.key)}"
        tensors = {split: self._spill.transform(preprocessor, self.splits[split], f"{prefix}-{split}") for split in SPLITS}
        streamed = self.notes.setdefault("streamed_modalities", [])
        if name not in streamed:  # a second preprocessing of the same modality
            streamed.append(name)
        return info, tensors

    def reserve(self, size: float) -> bool:
        """Whether ``size`` more bytes of tensors fit the memory budget (if so, they now count against it)."""
        if self.memory_budget is None:
            self.memory_budget = memory_budget()
        if self._resident_bytes + size > self.memory_budget:
            return False
        self._resident_bytes += size
        return True

    def allocate(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor: in memory while it fits the budget, else backed by a spill file."""
        size = math.prod(shape) * dtype.itemsize
        return torch.empty(shape, dtype=dtype) if self.reserve(size) else self._spill.empty(name, shape, dtype)

    def tensors(self, preprocessors: Mapping[str, Preprocessor]) -> tuple[dict[str, ModalityInfo], dict[str, SplitTensors]]:
        """Every modality through its preprocessor: fitted infos and split -> :class:`SplitTensors`."""
        infos: dict[str, ModalityInfo] = {}
        per_split: dict[str, dict[str, Tensors]] = {split: {} for split in SPLITS}
        for name, preprocessor in preprocessors.items():
            infos[name], tensors = self.modality(name, preprocessor)
            for split in SPLITS:
                per_split[split][name] = tensors[split]
        return infos, {split: SplitTensors(per_split[split], self.labels(split)) for split in SPLITS}


def fold_splits(tensors: Mapping[str, SplitTensors], folds: Sequence[np.ndarray]) -> Iterator[dict[str, SplitTensors]]:
    """Per fold: train = the other folds' rows, validation = the fold's, test unchanged.

    Folds are row selections of the tensors already built (train rows then validation rows), so
    nothing is preprocessed or encoded again; one fold's copy is in memory at a time.
    """
    train, validation = tensors["train"], tensors["validation"]
    n_train = len(train)
    for fold in folds:
        held = torch.zeros(n_train + len(validation), dtype=torch.bool)
        held[torch.as_tensor(fold, dtype=torch.long)] = True
        yield {"train": _gather(train, validation, torch.nonzero(~held).flatten(), n_train),
               "validation": _gather(train, validation, torch.nonzero(held).flatten(), n_train), "test": tensors["test"]}


def _gather(train: SplitTensors, validation: SplitTensors, positions: torch.Tensor, n_train: int) -> SplitTensors:
    """Rows at ``positions`` of train followed by validation, without concatenating the two first."""
    first, second = train.take(positions[positions < n_train]), validation.take(positions[positions >= n_train] - n_train)
    inputs = {name: {key: torch.cat([value, second.inputs[name][key]]) for key, value in tensors.items()}
              for name, tensors in first.inputs.items()}
    return SplitTensors(inputs, torch.cat([first.labels, second.labels]))


def multi_hot(label_lists: list[list[str]], names: tuple[str, ...]) -> torch.Tensor:
    """``(N, len(names))`` float 0/1 matrix of each row's labels (unknown names are ignored)."""
    index = {name: i for i, name in enumerate(names)}
    matrix = torch.zeros(len(label_lists), len(names))
    for row, labels in enumerate(label_lists):
        for name in labels:
            if name in index:
                matrix[row, index[name]] = 1.0
    return matrix


def _short_hash(text: str) -> str:
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()[:8]
