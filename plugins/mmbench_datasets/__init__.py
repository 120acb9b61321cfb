"""Built-in dataset providers, registered through the ``mmbench`` entry-point group."""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_datasets() -> list[type]:
    from mmbench_datasets.files import FilesProvider
    from mmbench_datasets.folders import AudioFolderProvider, FoldersProvider, ImageFolderProvider
    from mmbench_datasets.paired import PairedProvider
    from mmbench_datasets.synthetic import SyntheticProvider

    return [SyntheticProvider, FilesProvider, FoldersProvider, ImageFolderProvider, AudioFolderProvider, PairedProvider]
