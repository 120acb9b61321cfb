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


class WavesProvider(DatasetProvider):
    """Noisy two-channel waves of varying length (a ``timeseries`` column) plus a weak ``context`` vector.

    The label is the wave's frequency band, so the series carries the signal and the vector only a hint.
    """

    name = "example_waves"
    description = "generated timeseries (sine/cosine of 3 frequency bands, varying length) + a hint vector"
    options = {
        "n_samples": "rows to generate (default 300)",
        "noise": "standard deviation of the noise (default 0.3)",
    }

    @classmethod
    def example_task(cls, directory: Path) -> dict[str, Any]:
        return {"options": {"n_samples": 60}, "label": "band"}

    def load(self, context: LoadContext) -> RawData:
        import datasets

        n = self.settings.get("n_samples", 300)
        noise = self.settings.get("noise", 0.3)
        if isinstance(n, bool) or not isinstance(n, int) or n < 20:
            raise ConfigError(f"example_waves: option 'n_samples' must be an integer >= 20, got {n!r}")
        rng = np.random.default_rng(context.seed)
        bands = rng.integers(0, 3, size=n)
        series = []
        for band in bands:
            steps = int(rng.integers(20, 41))
            t = np.arange(steps) / steps
            phase = rng.uniform(0, 2 * np.pi)
            angle = 2 * np.pi * (1.5 + 2.5 * band) * t + phase
            wave = np.stack([np.sin(angle), np.cos(angle)], axis=1) + noise * rng.normal(size=(steps, 2))
            series.append(wave.astype(np.float32).tolist())
        hint = np.eye(3)[bands] + 2.0 * rng.normal(size=(n, 3))
        columns = {
            "signal": series,
            "context": hint.astype(np.float32).tolist(),
            "band": [("slow", "medium", "fast")[b] for b in bands],
        }
        return RawData(splits={"all": datasets.Dataset.from_dict(columns)}, modalities={"signal": "timeseries", "context": "embedding"})
