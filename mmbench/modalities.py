"""The modality-kind contract: what a plugin declares to add a kind of data (text, images, series...).

The core knows no concrete kind. A plugin returns :class:`ModalityKind` subclasses from the
``mmbench_modalities`` hook; the registry checks them like other components, and the data
layer, the search and the conformance kit ask the registered kind for what differs between
kinds: the default preprocessing, the file extensions that mark a column of paths as this
kind, how to check such a file before training, the ``data.degrade`` operations
(:class:`Degradation`), what a missing cell holds, and small example data for conformance checks.

Example:
    >>> from mmbench import ModalityKind
    >>> class Points(ModalityKind):
    ...     name = "points"
    ...     info_fields = ("dim",)
    ...     example_sizes = {"dim": 3}
    >>> Points.example_columns or (Points.name,)
    ('points',)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from mmbench.errors import MediaError, one_line

if TYPE_CHECKING:
    import datasets
    import numpy as np
    import torch

    from mmbench.data.preprocess.contract import Preprocessor
    from mmbench.data.schema import ModalityInfo

Batch = dict[str, "torch.Tensor"]
#: split name -> a random generator unique to (seed, target, operation, split)
Rngs = Callable[[str], "np.random.Generator"]
#: ``(splits, columns, op, rngs) -> splits``: what a :class:`Degradation` runs
DegradeFunction = Callable[
    [Mapping[str, "datasets.Dataset"], Sequence[str], Mapping[str, Any], Rngs], dict[str, "datasets.Dataset"]
]


@dataclass(frozen=True)
class Degradation:
    """One ``data.degrade`` operation a kind offers (``{op: noise, snr_db: 0}``).

    The core parses the task's block, finds the operation among the target column's kind's
    :attr:`ModalityKind.degradations`, derives the seeds and calls :attr:`apply`.

    Attributes:
        apply: ``(splits, columns, op, rngs) -> splits``: returns every split (train, validation,
            test) with ``columns`` replaced. ``op`` holds the parameters (defaults filled in) and
            ``op["op"]``; ``rngs(split_name)`` gives a fresh generator for that split, the same
            for a given task seed, target, position in the list and split. Fit anything learned
            (e.g. PCA components) on ``"train"`` only.
        params: parameter -> ``(default, minimum, maximum)``; default ``None`` makes it required.
            Values are numbers; every operation also takes ``seed`` (default: the split seed).
        per_column: ``True``: ``apply`` runs once per column of the target (one column each, the
            generators keyed by the column); ``False``: once with all the target's columns (the
            generators keyed by the target), for operations that draw over several columns at once.
    """

    apply: DegradeFunction
    params: Mapping[str, tuple[float | None, float, float]] = field(default_factory=dict)
    per_column: bool = True


class ModalityKind:
    """A kind of modality. Subclasses set the class attributes and override the classmethods.

    Nothing is instantiated: the registry keeps the classes.

    Class attributes:
        name: the kind's name, used as ``ModalityInfo.kind``, an encoder's ``modality`` and the
            prefix of its encoders' names (lowercase, no dot).
        description: one line for ``mmbench plugins``.
        info_fields: the :class:`~mmbench.ModalityInfo` fields the kind's preprocessing fills
            (documentation for encoder authors, and what :meth:`example_info` must set).
        extensions: lowercase file suffixes (``".wav"``) of a file-based kind: a column whose
            values are paths with these suffixes is inferred to be of this kind.
        degradations: operation name -> :class:`Degradation`: what ``data.degrade`` may apply to
            columns of this kind. Names are best unique across kinds: a task file's block is
            checked before the data is known, against the target's kind when the target names
            one, else against the first kind (in name order) offering the name.
        missing_value: what a missing cell of this kind holds (default ``None``, an Arrow null):
            a degradation that hides cells writes it, the bad-row check reports a file kind's
            cell holding it (or an empty path) as "no file", and the default preprocessor must
            accept it (the tabular one reads it as NaN / unknown category, the text one as no word).
        example_sizes: the fitted info fields of the conformance kit's example modality.
        example_columns: its columns (default: one, named after the kind).
        example_extra: its ``ModalityInfo.extra``.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    info_fields: ClassVar[tuple[str, ...]] = ()
    extensions: ClassVar[tuple[str, ...]] = ()
    example_sizes: ClassVar[Mapping[str, Any]] = {}
    example_columns: ClassVar[tuple[str, ...]] = ()
    example_extra: ClassVar[Mapping[str, Any]] = {}
    degradations: ClassVar[Mapping[str, Degradation]] = {}
    missing_value: ClassVar[Any] = None

    @classmethod
    def is_file_kind(cls) -> bool:
        """Whether cells may be paths to files, which the core checks before training (:meth:`check_file`),
        resolves against the data folder and hashes by content (fingerprints, duplicates).

        Default: the kind declares :attr:`extensions`.
        """
        return bool(cls.extensions)

    @classmethod
    def check_file(cls, path: str) -> None:
        """Cheap check that a file kind's ``path`` can be read, run on every row before training.

        The default checks that it is an existing regular file (a FIFO or device would block the
        read); override it to also read the header (call ``super().check_file(path)`` first), and
        import decoders inside the method.

        Raises:
            MediaError: the reason, naming the file but not the row (the caller adds it).
        """
        target = Path(path)
        try:
            if not target.exists():
                raise MediaError(f"{cls.name} file '{_short(path)}' not found")
            if not target.is_file():
                raise MediaError(f"{cls.name} path '{_short(path)}' is not a regular file")
        except OSError as error:  # e.g. a name longer than the file system allows
            raise MediaError(f"{cls.name} path '{_short(path)}' cannot be read ({one_line(error, 200)})") from None

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        """The preprocessing a modality of this kind gets when its encoder asks for none.

        Import heavy decoders inside this method, so listing plugins stays cheap.
        """
        raise NotImplementedError(f"modality kind '{cls.name}' declares no default preprocessor")

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: torch.Generator) -> Batch:
        """A random batch of ``batch_size`` rows in the format the default preprocessor produces."""
        raise NotImplementedError(f"modality kind '{cls.name}' declares no example batch")

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: np.random.Generator) -> dict[str, list[Any]]:
        """Raw column values (before preprocessing) for ``info.columns``, as a provider returns them."""
        raise NotImplementedError(f"modality kind '{cls.name}' declares no example rows")


def _short(path: str, limit: int = 120) -> str:
    """A path cut to ``limit`` characters for a one-line message."""
    return path if len(path) <= limit else f"{path[:limit]}..."
