"""The modality-kind contract: what a plugin declares to add a kind of data (text, images, series...).

The core knows no concrete kind. A plugin returns :class:`ModalityKind` subclasses from the
``mmbench_modalities`` hook; the registry checks them like other components, and the data
layer, the search and the conformance kit ask the registered kind for what differs between
kinds: the default preprocessing, the file extensions that mark a column of paths as this
kind, and small example data for conformance checks.

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

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    import numpy as np
    import torch

    from mmbench.data.preprocess.base import Preprocessor
    from mmbench.data.schema import ModalityInfo

Batch = dict[str, "torch.Tensor"]


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
