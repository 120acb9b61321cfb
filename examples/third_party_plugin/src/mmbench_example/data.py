"""``example_blobs``: two generated modalities; the label is the sign of their product, so it needs both."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mmbench import ConfigError, DatasetProvider, LoadContext, RawData


class BlobsProvider(DatasetProvider):
    """A vector ``x1`` and a sequence ``x2`` whose hidden signs multiply into a binary label."""

    name = "example_blobs"
    description = "generated vector + sequence modalities; label = sign(a * b) needs both"
    options = {
        "n_samples": "rows to generate (default 400)",
        "noise": "standard deviation of the noise (default 0.5)",
    }

    @classmethod
    def example_task(cls, directory: Path) -> dict[str, Any]:
        """Options and label for mmbench.testing's dataset checks: a small, fast data set."""
        return {"options": {"n_samples": 60}, "label": "label"}

    def load(self, context: LoadContext) -> RawData:
        import datasets

        n = self.settings.get("n_samples", 400)
        noise = self.settings.get("noise", 0.5)
        if isinstance(n, bool) or not isinstance(n, int) or n < 20:
            raise ConfigError(f"example_blobs: option 'n_samples' must be an integer >= 20, got {n!r}")
        rng = np.random.default_rng(context.seed)  # seeded: the same task gives the same rows
        a, b = rng.normal(size=n), rng.normal(size=n)
        x1 = np.stack([a, -a, a * 0.5, rng.normal(size=n)], axis=1) + noise * rng.normal(size=(n, 4))
        x2 = b[:, None, None] * np.ones((n, 3, 4)) + noise * rng.normal(size=(n, 3, 4))
        columns = {
            "x1": x1.astype(np.float32).tolist(),
            "x2": x2.astype(np.float32).tolist(),
            "label": ["same" if s > 0 else "opposite" for s in a * b],
        }
        return RawData(splits={"all": datasets.Dataset.from_dict(columns)}, modalities={"x1": "embedding", "x2": "embedding"})
