"""Class-per-folder layouts (``imagefolder`` / ``audiofolder`` style): the folder name is the label.

Two layouts are recognised::

    root/<class>/<file>                      # mmbench splits it
    root/{train,validation,test}/<class>/<file>   # provided splits (``val``/``valid`` accepted)

For video, an item is a video file or a folder of frame images. Paths stay relative to
``root`` (the fingerprint hashes file contents, so moving the folder keeps it).

Hugging Face's own ``imagefolder`` / ``audiofolder`` builders are not used: their audio
feature decodes through torchcodec (system FFmpeg), which this suite avoids.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from mmbench import ConfigError, DataError, DatasetProvider, LoadContext, RawData
from mmbench_datasets import examples
from mmbench_datasets.sources import class_folders

_SPLIT_NAMES = {"train": ("train",), "validation": ("validation", "val", "valid"), "test": ("test",)}


class FoldersProvider(DatasetProvider):
    """Media files under one folder per class."""

    name = "folders"
    description = "class-per-folder trees of images, audio clips or videos (label = folder name)"
    options = {
        "path": "root folder (root/<class>/<file>, or root/<split>/<class>/<file>)",
        "kind": "image, audio or video (default: from the file extensions)",
        "column": "name of the media column (default: the kind)",
    }
    default_kind: ClassVar[str | None] = None

    @classmethod
    def example_task(cls, directory: Path) -> dict[str, Any]:
        """A small class-per-folder tree of this provider's kind (for the conformance kit)."""
        return {"options": {"path": str(examples.class_tree(directory / "tree", cls.default_kind or "image"))}, "label": "label"}

    def load(self, context: LoadContext) -> RawData:
        context = context or LoadContext()
        if not self.settings.get("path"):
            raise ConfigError(f"{self.name}: option 'path' (the root folder) is required")
        kind = self.settings.get("kind", self.default_kind)
        if kind not in (None, "image", "audio", "video"):
            raise ConfigError(f"{self.name}: kind must be image, audio or video, got {kind!r}")
        root = context.resolve(self.settings["path"])
        if not root.is_dir():
            raise ConfigError(f"{self.name}: folder '{root}' not found")
        layout = _split_folders(root)
        import datasets

        splits, sources, bases, kinds = {}, {}, {}, set()
        for split, folder in (layout or {"all": root}).items():
            source = class_folders(folder, kind, self.name)
            kinds.add(source.kind)
            column = self.settings.get("column") or source.kind
            splits[split] = datasets.Dataset.from_dict({column: source.cells, "label": source.labels})
            sources[split], bases[split] = str(folder), folder
        if len(kinds) > 1:
            raise DataError(f"{self.name}: the splits of '{root}' hold different kinds ({', '.join(sorted(kinds))})")
        found = kinds.pop()
        column = self.settings.get("column") or found
        return RawData(splits=splits, modalities={column: found}, base_dir=bases, sources=sources)


class ImageFolderProvider(FoldersProvider):
    """``folders`` restricted to images."""

    name = "imagefolder"
    description = "images under root/<class>/ (label = folder name)"
    default_kind = "image"


class AudioFolderProvider(FoldersProvider):
    """``folders`` restricted to audio clips."""

    name = "audiofolder"
    description = "audio clips under root/<class>/ (label = folder name)"
    default_kind = "audio"


def _split_folders(root: Path) -> dict[str, Path] | None:
    """split -> folder when ``root`` holds train / validation / test folders, else ``None``."""
    found = {}
    for split, names in _SPLIT_NAMES.items():
        for name in names:
            if (root / name).is_dir():
                found[split] = root / name
                break
    if not found:
        return None
    if set(found) != set(_SPLIT_NAMES):
        missing = ", ".join(sorted(set(_SPLIT_NAMES) - set(found)))
        raise DataError(f"folders: '{root}' has split folders but lacks {missing}")
    return found
