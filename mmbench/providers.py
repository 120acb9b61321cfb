"""The dataset-provider contract: where a task's rows come from.

A top-level module like :mod:`mmbench.components` (the encoder and fusion contract), so the
registry checks providers without importing the data layer (which asks the registry for
modality kinds).

A provider knows how to read one kind of source (local files, a folder layout, a generator) and
returns Hugging Face ``datasets`` splits plus what it knows of the columns' modalities. The
core then applies the task's overrides, splits, builds the :class:`~mmbench.data.schema.Schema`
and fingerprints the result (:mod:`mmbench.data.prepare`), so every provider gets the same
honest splitting and validation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mmbench.errors import ConfigError
from mmbench.space import Space

if TYPE_CHECKING:
    import datasets

#: Split names, in the order they are reported.
SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class LoadContext:
    """What a provider may use while loading.

    Attributes:
        data_root: where the user keeps data files (``--data-root`` / ``MMBENCH_DATA``);
            relative paths in options resolve against it.
        task_dir: the folder of the task file (relative paths resolve here when no data root).
        seed: the task's data seed, for generated or paired data.
    """

    data_root: Path | None = None
    task_dir: Path | None = None
    seed: int = 0

    def resolve(self, path: str | Path) -> Path:
        """Resolve a path from task options: absolute, else under data root, else task dir.

        Raises:
            ConfigError: ``path`` is not text (task options arrive untyped from YAML).
        """
        if not isinstance(path, (str, Path)):
            raise ConfigError(f"a task option that names a file must be a path, got {repr(path)[:60].rstrip()}")
        candidate = Path(path).expanduser()
        if candidate.is_absolute():
            return candidate
        for base in (self.data_root, self.task_dir):
            if base is not None and (base / candidate).exists():
                return base / candidate
        return (self.data_root or self.task_dir or Path.cwd()) / candidate


@dataclass
class RawData:
    """A provider's output before the core splits and types it.

    Attributes:
        splits: split name -> dataset. Either the three of :data:`SPLITS` or, when the source
            is not split, a single ``"all"`` that the core splits.
        modalities: column -> modality kind, for the columns the provider knows about
            (``numeric`` / ``categorical`` also accepted: tabular columns of that type).
        base_dir: folder that relative file paths in the columns are relative to, or split ->
            folder when split files live in different folders.
        notes: facts to record on the run (e.g. ``{"skipped_rows": 3}``).
        sources: split -> where its rows come from (a file path), named in data errors.
    """

    splits: Mapping[str, datasets.Dataset]
    modalities: Mapping[str, str] = field(default_factory=dict)
    base_dir: Path | Mapping[str, Path] | None = None
    notes: dict[str, Any] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=dict)


class DatasetProvider:
    """Reads a data source named by a task's ``data.provider``.

    Subclasses set ``name``, ``description`` and ``options`` (option name -> one-line help;
    options not listed are rejected with a clear error) and implement :meth:`load`.

    Example:
        >>> import datasets
        >>> from mmbench import DatasetProvider, RawData
        >>> class Tiny(DatasetProvider):
        ...     name = "tiny"
        ...     options = {"n": "number of rows"}
        ...     def load(self, context):
        ...         n = int(self.settings.get("n", 8))
        ...         rows = {"x": [[float(i)] for i in range(n)], "label": [i % 2 for i in range(n)]}
        ...         return RawData(splits={"all": datasets.Dataset.from_dict(rows)}, modalities={"x": "embedding"})
        >>> Tiny(n=4).load(None).splits["all"].num_rows
        4
    """

    kind: ClassVar[str] = "dataset"
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    options: ClassVar[Mapping[str, str]] = {}
    space: ClassVar[Space] = {}
    expected_failures: ClassVar[Mapping[str, str]] = {}

    def __init__(self, **settings: Any) -> None:
        unknown = sorted(set(settings) - set(self.options))
        if unknown:
            valid = ", ".join(sorted(self.options)) or "(none)"
            raise ConfigError(f"dataset provider '{self.name}': unknown option(s) {', '.join(unknown)}; valid: {valid}")
        self.settings = dict(settings)

    def load(self, context: LoadContext) -> RawData:  # pragma: no cover - abstract
        raise NotImplementedError
