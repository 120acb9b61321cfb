"""The ``tabular`` modality kind: every numeric and categorical column of a task, as one modality."""

from __future__ import annotations

from typing import Any

from mmbench import ModalityInfo, ModalityKind, Preprocessor

_COLUMNS = ("n1", "n2", "n3", "c1", "c2")


class TabularKind(ModalityKind):
    """Tabular columns -> ``numeric`` ``(B, F)`` standardised floats and ``categorical`` ``(B, K)`` codes."""

    name = "tabular"
    description = "numeric + categorical columns -> standardised numbers + integer codes"
    info_fields = ("n_numeric", "cardinalities")
    example_sizes = {"n_numeric": 3, "cardinalities": (4, 3)}
    example_columns = _COLUMNS
    example_extra = {"numeric": _COLUMNS[:3], "categorical": _COLUMNS[3:]}

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
