"""Local tables (csv, tsv, jsonl, parquet): one file per split, or files that mmbench splits.

Columns may hold text, numbers, categories, lists of numbers (embeddings) or paths to images,
audio clips, videos or frame folders; the core infers each column's kind (overridable under the
task's ``modalities:``). Relative paths in a table resolve against that table's folder (or the
``base_dir`` option).

Example task::

    data:
      provider: files
      options: {path: reviews/data.csv}                 # mmbench splits it
      # options: {train: tr.csv, validation: va.csv, test: te.csv}
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmbench import ConfigError, DataError, DatasetProvider, LoadContext, RawData, one_line
from mmbench_datasets import examples

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl", ".json": "json", ".parquet": "parquet", ".pq": "parquet"}


class FilesProvider(DatasetProvider):
    """Reads local table files with pandas into Hugging Face datasets."""

    name = "files"
    description = "local csv / tsv / jsonl / parquet files, one per split or split by mmbench"
    options = {
        "path": "a file (or a list of files, concatenated) that mmbench splits",
        "train": "training split file (with validation and test)",
        "validation": "validation split file",
        "test": "test split file",
        "format": "csv, tsv, jsonl, json or parquet (default: from the file extension)",
        "base_dir": "folder that relative media paths resolve against (default: each table's folder)",
    }

    @classmethod
    def example_task(cls, directory: Path) -> dict[str, Any]:
        """A small csv with text, tabular, image-path and audio-path columns (for the conformance kit)."""
        return {"options": {"path": str(examples.media_table(directory))}, "label": "label"}

    def load(self, context: LoadContext) -> RawData:
        context = context or LoadContext()
        self._check_types()
        given = {key for key in ("train", "validation", "test") if self.settings.get(key)}
        if self.settings.get("path") and given:
            raise ConfigError("files: give either 'path' or 'train'/'validation'/'test', not both")
        if given and given != {"train", "validation", "test"}:
            raise ConfigError(
                f"files: split files need all of train, validation and test; missing: {', '.join(sorted({'train', 'validation', 'test'} - given))}"
            )
        if not given and not self.settings.get("path"):
            raise ConfigError("files: set option 'path' (one table to split) or 'train', 'validation' and 'test'")
        wanted = (
            {"all": self.settings["path"]} if not given else {key: self.settings[key] for key in ("train", "validation", "test")}
        )
        splits, sources, bases = {}, {}, {}
        for split, value in wanted.items():
            paths = [context.resolve(p) for p in (value if isinstance(value, list) else [value])]
            splits[split] = self._read(paths)
            sources[split] = " + ".join(str(p) for p in paths)
            bases[split] = context.resolve(self.settings["base_dir"]) if self.settings.get("base_dir") else paths[0].parent
        return RawData(splits=splits, base_dir=bases, sources=sources)

    def _check_types(self) -> None:
        """Options arrive untyped from YAML: a path is text (``path`` and the split files: or a list of them)."""
        for key in ("path", "train", "validation", "test", "format", "base_dir"):
            value = self.settings.get(key)
            listed = key not in ("format", "base_dir") and isinstance(value, list) and bool(value)
            if value is not None and not isinstance(value, str) and not (listed and all(isinstance(v, str) for v in value)):
                wanted = "text" if key in ("format", "base_dir") else "a file path or a list of file paths"
                raise ConfigError(f"files: option '{key}' must be {wanted}, got {repr(value)[:60].rstrip()}")

    def _read(self, paths: list[Path]) -> Any:
        import datasets
        import pandas as pd

        frames = [self._frame(path) for path in paths]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        frame = _integral_floats_as_integers(frame)
        try:
            return datasets.Dataset.from_pandas(frame, preserve_index=False)
        except Exception as error:  # noqa: BLE001 - pyarrow raises many types on mixed columns
            place = " + ".join(map(str, paths))
            odd = _odd_cell(frame)
            if odd:
                raise DataError(f"{place}, {odd}") from None
            raise DataError(f"{place}: cannot convert to a dataset ({one_line(error, 200)})") from None

    def _frame(self, path: Path) -> Any:
        import pandas as pd

        fmt = self.settings.get("format") or FORMATS.get(path.suffix.lower())
        if fmt not in set(FORMATS.values()):
            raise ConfigError(
                f"files: cannot tell the format of '{path}'; set option 'format' to one of csv, tsv, jsonl, json, parquet"
            )
        if not path.is_file():
            raise ConfigError(f"files: '{path}' not found")
        try:
            if fmt in ("csv", "tsv"):
                return pd.read_csv(path, sep="\t" if fmt == "tsv" else ",")
            if fmt in ("jsonl", "json"):
                return pd.read_json(path, lines=fmt == "jsonl")
            return pd.read_parquet(path)
        except pd.errors.EmptyDataError:
            raise DataError(f"{path}: the file is empty") from None
        except (ValueError, OSError, pd.errors.ParserError) as error:
            raise DataError(f"{path}: cannot parse as {fmt} ({one_line(error, 200)})") from None


def _integral_floats_as_integers(frame: Any) -> Any:
    """Integer columns with gaps come back from pandas as floats; keep them integers (with nulls)
    so a label 3 stays class '3', not '3.0'."""
    for column in frame.columns:
        series = frame[column]
        if series.dtype.kind == "f" and series.isna().any():
            present = series.dropna()
            if len(present) and (present == present.round()).all() and present.abs().max() < 2**53:
                frame[column] = series.astype("Int64")
    return frame


def _odd_cell(frame: Any) -> str | None:
    """``row R: column 'C' holds ...`` for the first cell whose sort of value (number, text, list,
    mapping) differs from most of its column's (a path column holding ``7`` or ``{"a": 1}``), else ``None``."""
    for column in frame.columns:
        if frame[column].dtype != object:
            continue
        sorts = [None if _is_missing(v) else _sort_of(v) for v in frame[column]]
        present = [sort for sort in sorts if sort is not None]
        if len(set(present)) < 2:
            continue
        usual = max(sorted(set(present)), key=present.count)
        row = next(r for r, sort in enumerate(sorts) if sort not in (None, usual))
        value = " ".join(repr(frame[column].iloc[row]).split())  # an array's repr spans lines
        return f"row {row}: column '{column}' holds {sorts[row]} ({value:.60}) where its other rows hold {usual}; a column holds one sort of value"
    return None


def _sort_of(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, (list, tuple)) or hasattr(value, "__array__"):
        return "a list"
    return type(value).__name__


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)
