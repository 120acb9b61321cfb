"""Multimodal data from unimodal sets that share labels (audio-visual digits, AV-MNIST style).

Each modality comes from its own labelled source; within every class the items of each source
are shuffled with a fixed seed and paired in order, so row ``i`` of a class holds the ``i``-th
shuffled recording and the ``i``-th shuffled image of that class. The pairing is artificial,
the items are real: only the label links the modalities, which is the point of the benchmark.

Example task (FSDD recordings x MNIST digits)::

    data:
      provider: paired
      options:
        modalities:
          audio: {glob: fsdd/recordings/*.wav, label: '^(\\d)_', group: '^\\d_([a-z]+)_'}
          image: {idx_images: mnist/t10k-images-idx3-ubyte.gz, idx_labels: mnist/t10k-labels-idx1-ubyte.gz}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmbench import ConfigError, DataError, DatasetProvider, LoadContext, RawData
from mmbench_datasets import examples
from mmbench_datasets.sources import Source, array_column, read_source


class PairedProvider(DatasetProvider):
    """Pairs two or more labelled unimodal sources on the label, with a fixed seed."""

    name = "paired"
    description = (
        "pairs labelled unimodal sets (folders, globbed files, IDX arrays) on the label, e.g. spoken digits x digit images"
    )
    options = {
        "modalities": "modality name -> source: {folders: DIR} | {glob: PATTERN, label: REGEX, group: REGEX} | {idx_images: F, idx_labels: F}",
        "per_class": "pairs per class (default: the smallest source's count for that class)",
        "seed": "pairing seed (default: the task's split seed)",
        "label_column": "name of the label column (default 'label')",
    }

    @classmethod
    def example_task(cls, directory: Path) -> dict[str, Any]:
        """Small image and audio class trees paired on the label (for the conformance kit)."""
        sources = {kind: {"folders": str(examples.class_tree(directory / kind, kind))} for kind in ("image", "audio")}
        return {"options": {"modalities": sources, "seed": 0}, "label": "label"}

    def load(self, context: LoadContext) -> RawData:
        context = context or LoadContext()
        specs = self.settings.get("modalities")
        if not isinstance(specs, dict) or len(specs) < 2:
            raise ConfigError("paired: option 'modalities' must map at least two modality names to sources")
        seed = self.settings.get("seed", context.seed)
        per_class = self.settings.get("per_class")
        if per_class is not None and (isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1):
            raise ConfigError(f"paired: per_class must be a positive integer, got {per_class!r}")
        label_column = str(self.settings.get("label_column", "label"))
        sources = {name: read_source(context, spec, f"paired: modalities.{name}") for name, spec in specs.items()}
        if label_column in sources:
            raise ConfigError(f"paired: modality name '{label_column}' clashes with the label column; set label_column")
        picks, labels, notes = _pair(sources, per_class, np.random.default_rng(seed))
        columns: dict[str, Any] = {}
        modalities: dict[str, str] = {}
        for name, source in sources.items():
            chosen = picks[name]
            if isinstance(source.cells, np.ndarray):
                columns[name] = array_column(source.cells[chosen])
            else:
                columns[name] = [source.cells[i] for i in chosen]
            modalities[name] = source.kind
            if source.groups is not None:
                columns[f"{name}_group"] = [source.groups[i] for i in chosen]
                modalities[f"{name}_group"] = "ignore"  # usable as split.group_column, never a feature
        columns[label_column] = _typed_labels(labels)
        import datasets
        import pyarrow as pa
        from datasets.table import InMemoryTable

        table = pa.table({name: values if isinstance(values, pa.Array) else pa.array(values) for name, values in columns.items()})
        return RawData(splits={"all": datasets.Dataset(InMemoryTable(table))}, modalities=modalities, notes=notes)


def _pair(
    sources: dict[str, Source], per_class: int | None, rng: np.random.Generator
) -> tuple[dict[str, list[int]], list[str], dict[str, Any]]:
    """Indices into each source, row by row, and the row labels."""
    by_class = {name: _indices_by_class(source.labels) for name, source in sources.items()}
    shared = set.intersection(*(set(classes) for classes in by_class.values()))
    if len(shared) < 2:
        raise DataError(f"paired: the sources share {len(shared)} label(s); pairing needs at least 2 common classes")
    dropped = sorted(set.union(*(set(c) for c in by_class.values())) - shared)
    picks: dict[str, list[int]] = {name: [] for name in sources}
    labels: list[str] = []
    for label in sorted(shared):  # any fixed order: the split reshuffles
        available = min(len(by_class[name][label]) for name in sources)
        n = available if per_class is None else per_class
        if n > available:
            raise DataError(f"paired: class '{label}' has only {available} item(s) in some source; per_class={per_class}")
        for name in sources:
            picks[name].extend(int(i) for i in rng.permutation(by_class[name][label])[:n])
        labels.extend([label] * n)
    notes = {"paired_rows": len(labels)}
    if dropped:
        notes["paired_dropped_classes"] = ",".join(dropped)
    return picks, labels, notes


def _indices_by_class(labels: list[str]) -> dict[str, np.ndarray]:
    values = np.asarray(labels)
    return {str(v): np.flatnonzero(values == v) for v in np.unique(values)}


def _typed_labels(labels: list[str]) -> list[Any]:
    try:
        return [int(v) for v in labels]
    except ValueError:
        return labels
