"""A column's registered modality kind: how the data layer asks a kind instead of naming it.

Columns carry the kind the task, the provider or inference gave them; inference's tabular
sub-kinds (``numeric``, ``categorical``) belong to the registered ``tabular`` kind. The bad-row
check, the duplicate probe, the fingerprint and ``data.degrade`` look the kind up here and ask
it (is it a file kind, what does its file check do, which operations does it offer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from mmbench.data.infer import TABULAR_SUBKINDS

if TYPE_CHECKING:
    from mmbench.modalities import ModalityKind


def kind_name(column_kind: str) -> str:
    """The registered kind a column's kind belongs to: ``numeric`` and ``categorical`` are ``tabular``."""
    return "tabular" if column_kind in TABULAR_SUBKINDS else column_kind


def registered_kind(column_kind: str) -> type[ModalityKind] | None:
    """The registered kind class of a column's kind; ``None`` when no loaded plugin provides it."""
    from mmbench.registry import get_registry

    registry = get_registry()
    name = kind_name(column_kind)
    return registry.get_kind(name) if name in registry.list_kinds() else None


def file_columns(kinds: Mapping[str, str]) -> list[str]:
    """The columns (of column -> kind) whose registered kind is a file kind."""
    return [column for column, kind in kinds.items() if (found := registered_kind(kind)) is not None and found.is_file_kind()]
