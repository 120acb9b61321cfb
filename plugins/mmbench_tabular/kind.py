"""The ``tabular`` modality kind: every numeric and categorical column of a task, as one modality."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from mmbench import Degradation, ModalityInfo, ModalityKind, Preprocessor, Rngs, replace_column

if TYPE_CHECKING:
    import datasets
    import numpy as np

_COLUMNS = ("n1", "n2", "n3", "c1", "c2")


def mask(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """``data.degrade``'s ``mask``: each cell of the target's columns set missing with probability ``p``
    (one draw over rows x columns per split, so the target's columns share a generator)."""
    return {name: _masked(split, list(columns), op["p"], rngs(name)) for name, split in splits.items()}


def _masked(split: datasets.Dataset, columns: list[str], p: float, rng: np.random.Generator) -> datasets.Dataset:
    import pyarrow as pa

    hidden = rng.random((split.num_rows, len(columns))) < p
    for index, column in enumerate(columns):
        array = split.with_format("arrow")[column]
        array = array.combine_chunks() if isinstance(array, pa.ChunkedArray) else array
        keep = pa.array(~hidden[:, index])
        missing = pa.scalar(TabularKind.missing_value, type=array.type)
        split = replace_column(split, column, pa.compute.if_else(keep, array, missing))
    return split


class TabularKind(ModalityKind):
    """Tabular columns -> ``numeric`` ``(B, F)`` standardised floats and ``categorical`` ``(B, K)`` codes."""

    name = "tabular"
    description = "numeric + categorical columns -> standardised numbers + integer codes"
    info_fields = ("n_numeric", "cardinalities")
    example_sizes = {"n_numeric": 3, "cardinalities": (4, 3)}
    example_columns = _COLUMNS
    example_extra = {"numeric": _COLUMNS[:3], "categorical": _COLUMNS[3:]}
    degradations = {"mask": Degradation(mask, {"p": (None, 0.0, 1.0)}, per_column=False)}

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        from mmbench_tabular.preprocess import TabularPreprocessor

        return TabularPreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: Any) -> dict[str, Any]:
        import torch

        batch = {}
        if info.n_numeric:
            batch["numeric"] = torch.randn((batch_size, info.n_numeric), generator=generator)
        if info.cardinalities:
            columns = [torch.randint(0, c, (batch_size,), generator=generator) for c in info.cardinalities]
            batch["categorical"] = torch.stack(columns, dim=1)
        return batch

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: Any) -> dict[str, list[Any]]:
        categorical = info.extra.get("categorical", ())
        return {
            c: [str(rng.choice(["x", "y", "z"])) for _ in range(n_rows)] if c in categorical else rng.normal(size=n_rows).tolist()
            for c in info.columns
        }
