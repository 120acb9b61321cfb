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

    def _read(self, paths: list[Path]) -> Any:
        import datasets
        import pandas as pd

        frames = [self._frame(path) for path in paths]
        frame = frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)
        frame = _integral_floats_as_integers(frame)
        try:
            return datasets.Dataset.from_pandas(frame, preserve_index=False)
        except Exception as error:  # noqa: BLE001 - pyarrow raises many types on mixed columns
            raise DataError(
                f"{' + '.join(map(str, paths))}: cannot convert to a dataset ({one_line(error, 200)})"
            ) from None

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
