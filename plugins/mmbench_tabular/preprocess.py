"""Default tabular preprocessing: standardised numbers and integer-coded categories.

The tabular modality gathers every numeric and categorical column of a task. Which columns are
categorical comes from the schema (``info.extra["categorical"]``, set from the task's
``modalities:`` kinds ``categorical`` / ``numeric``); a column with no declared type is numeric
when its values are numbers and categorical otherwise.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmbench import DataError, ModalityInfo, Preprocessor, Tensors, read_columns

if TYPE_CHECKING:
    import datasets


def is_numeric_column(split: datasets.Dataset, column: str) -> bool:
    """Whether the column's Arrow type is a number or a boolean."""
    return _is_number_type(split.data.schema.field(column).type)


def _is_number_type(kind: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_null(kind)


def column_types(info: ModalityInfo, split: datasets.Dataset) -> tuple[list[str], list[str]]:
    """(numeric columns, categorical columns) of a tabular modality, in schema order."""
    declared_categorical = set(info.extra.get("categorical", ()))
    declared_numeric = set(info.extra.get("numeric", ()))
    numeric, categorical = [], []
    for column in info.columns:
        if column in declared_categorical:
            categorical.append(column)
        elif column in declared_numeric or is_numeric_column(split, column):
            numeric.append(column)
        else:
            categorical.append(column)
    return numeric, categorical


class TabularPreprocessor(Preprocessor):
    """Tabular columns -> ``numeric`` float (B, Fn) standardised with NaN -> 0, ``categorical`` long (B, Fc).

    Category codes start at 1 in training-frequency order; 0 is unknown or missing. Both
    tensors are always present (with zero columns when a type is absent), so encoders need no
    special case.

    Args:
        info: the tabular modality.
        max_categories: most frequent categories kept per column (rarer ones become unknown).
    """

    def __init__(self, info: ModalityInfo, *, max_categories: int = 1000) -> None:
        super().__init__(info)
        self.max_categories = max_categories
        self.numeric: list[str] = []
        self.categorical: list[str] = []
        self.mean = np.zeros(0, dtype=np.float32)
        self.std = np.ones(0, dtype=np.float32)
        self.codes: list[dict[str, int]] = []
        self._fitted = False

    def options(self) -> dict[str, object]:
        return {"max_categories": self.max_categories}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        self.numeric, self.categorical = column_types(self.info, train)
        values = self._numbers(train)
        with np.errstate(all="ignore"):
            mean = np.nanmean(values, axis=0) if values.shape[0] else np.zeros(values.shape[1])
            std = np.nanstd(values, axis=0) if values.shape[0] else np.ones(values.shape[1])
        self.mean = np.nan_to_num(mean, nan=0.0).astype(np.float32)
        self.std = np.where(np.isfinite(std) & (std > 1e-8), std, 1.0).astype(np.float32)
        self.codes = []
        table = read_columns(train, self.categorical)
        for column in self.categorical:
            counts: dict[str, int] = {}
            for value in table.column(column).to_pylist():
                if not _missing(value):
                    counts[str(value)] = counts.get(str(value), 0) + 1
            ranked = sorted(counts, key=lambda v: (-counts[v], v))[: self.max_categories]
            self.codes.append({value: code + 1 for code, value in enumerate(ranked)})
        self._fitted = True
        return self.info.with_updates(
            n_numeric=len(self.numeric),
            cardinalities=tuple(len(codes) + 1 for codes in self.codes),
            extra={**self.info.extra, "numeric": tuple(self.numeric), "categorical": tuple(self.categorical)},
        )

    def transform(self, split: datasets.Dataset) -> Tensors:
        if not self._fitted:
            raise RuntimeError("TabularPreprocessor.transform called before fit")
        numbers = (self._numbers(split) - self.mean) / self.std
        numbers = np.nan_to_num(numbers, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)
        categories = np.zeros((split.num_rows, len(self.categorical)), dtype=np.int64)
        table = read_columns(split, self.categorical)
        for index, (column, codes) in enumerate(zip(self.categorical, self.codes)):
            categories[:, index] = [0 if _missing(v) else codes.get(str(v), 0) for v in table.column(column).to_pylist()]
        return {"numeric": torch.from_numpy(numbers), "categorical": torch.from_numpy(categories)}

    def _numbers(self, split: datasets.Dataset) -> np.ndarray:
        """The numeric columns as ``(rows, columns)`` floats, NaN where missing; one read of the split
        (a read per column is quadratic in the number of columns: 2,000 of them took minutes)."""
        import pyarrow as pa

        out = np.empty((split.num_rows, len(self.numeric)), dtype=np.float64)
        table = read_columns(split, self.numeric)
        for index, column in enumerate(self.numeric):
            array = table.column(column)
            if _is_number_type(array.type):
                out[:, index] = array.cast(pa.float64()).to_numpy(zero_copy_only=False)
                continue
            values = array.to_pylist()  # declared numeric, stored otherwise: numbers written as text
            try:
                out[:, index] = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
            except (TypeError, ValueError):
                row = next(r for r, v in enumerate(values) if not _number_like(v))
                raise DataError(
                    f"column '{column}', row {row}: numeric column holds {values[row]!r}; declare it 'categorical' under modalities:"
                ) from None
        return out


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or value == ""


def _number_like(value: Any) -> bool:
    if value is None:
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
