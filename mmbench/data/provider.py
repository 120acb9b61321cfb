"""The dataset-provider contract as the data layer names it (defined in :mod:`mmbench.providers`).

The contract lives at the top level so the registry, which the data layer asks for modality
kinds, can check providers without importing the data layer.
"""

from mmbench.providers import SPLITS, DatasetProvider, LoadContext, RawData

__all__ = ["SPLITS", "DatasetProvider", "LoadContext", "RawData"]
