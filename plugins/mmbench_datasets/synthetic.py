"""Synthetic multimodal data whose correct answers are known by construction.

Each modality is a column of vectors (or sequences of vectors). The ``mode`` dials how the
label depends on the modalities:

* ``redundant``: every modality carries the same signal; each alone suffices.
* ``unique``: only modality ``informative`` carries the signal; the others are noise.
* ``synergy``: the label is the XOR of two modalities' hidden bits; no modality alone beats
  chance, and only fusions that model interactions (not additive late fusion) solve it.
* ``mixed``: four classes = a redundant bit x a synergistic bit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mmbench import ConfigError, DatasetProvider, LoadContext, RawData

MODES = ("redundant", "unique", "synergy", "mixed")
#: Generated rows are held in memory (n_samples x dim floats per modality): beyond this is surely a typo.
MAX_ROWS = 10_000_000


class SyntheticProvider(DatasetProvider):
    """Generated vectors/sequences with a label of known multimodal structure."""

    name = "synthetic"
    description = "generated modalities with redundant, unique, synergistic or mixed signal"
    options = {
        "n_samples": "rows to generate (default 2000)",
        "n_modalities": "modalities, at least 2 (default 2)",
        "dim": "features per modality (default 8)",
        "seq_len": "when set, modalities after the first are sequences of this length (default: vectors)",
        "mode": f"one of {', '.join(MODES)} (default mixed)",
        "informative": "index of the informative modality in 'unique' mode (default 0)",
        "noise": "standard deviation of the additive noise (default 0.3)",
        "seed": "generation seed (default: the task's split seed)",
    }

    def load(self, context: LoadContext | None) -> RawData:
        settings = self._validated()
        seed = settings["seed"] if settings["seed"] is not None else (context.seed if context else 0)
        rng = np.random.default_rng(seed)
        n, k, dim = settings["n_samples"], settings["n_modalities"], settings["dim"]
        features, label = _generate(rng, n, k, dim, settings["mode"], settings["informative"], settings["noise"])
        columns: dict[str, Any] = {}
        for index, values in enumerate(features):
            if settings["seq_len"] and index > 0:
                values = _as_sequence(rng, values, settings["seq_len"], settings["noise"])
            columns[f"x{index + 1}"] = values.astype(np.float32).tolist()
        columns["label"] = label.tolist()
        import datasets

        return RawData(splits={"all": datasets.Dataset.from_dict(columns)}, modalities={c: "embedding" for c in columns if c != "label"})

    def _validated(self) -> dict[str, Any]:
        s = self.settings
        values = {
            "n_samples": _int(s, "n_samples", 2000, 20, MAX_ROWS),
            "n_modalities": _int(s, "n_modalities", 2, 2),
            "dim": _int(s, "dim", 8, 2),
            "seq_len": _int(s, "seq_len", 0, 0) or None,
            "mode": s.get("mode", "mixed"),
            "informative": _int(s, "informative", 0, 0),
            "noise": s.get("noise", 0.3),
            "seed": None if s.get("seed") is None else _int(s, "seed", 0, 0, 2**31 - 1),
        }
        if values["mode"] not in MODES:
            raise ConfigError(f"synthetic: mode must be one of {', '.join(MODES)}, got {values['mode']!r}")
        if values["informative"] >= values["n_modalities"]:
            raise ConfigError(f"synthetic: informative={values['informative']} but there are only {values['n_modalities']} modalities")
        noise = values["noise"]
        if isinstance(noise, bool) or not isinstance(noise, (int, float)) or not 0 <= noise < float("inf"):
            raise ConfigError(f"synthetic: option 'noise' must be a finite number >= 0, got {noise!r}")
        return values


def _int(settings: dict[str, Any], key: str, default: int, minimum: int, maximum: int = 10**6) -> int:
    value = settings.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
        raise ConfigError(f"synthetic: option '{key}' must be an integer in {minimum}..{maximum}, got {value!r}")
    return value


def _generate(rng: np.random.Generator, n: int, k: int, dim: int, mode: str, informative: int, noise: float) -> tuple[list[np.ndarray], np.ndarray]:
    """Per-modality features ``(n, dim)`` and labels, with the signal placed as ``mode`` says."""
    hidden = rng.normal(size=(n, k))  # one hidden scalar per modality
    shared = rng.normal(size=n)  # one hidden scalar shared by all modalities
    mixing = [rng.normal(size=(2, dim)) for _ in range(k)]
    if mode == "redundant":
        label = (shared > 0).astype(int)
        sources = [np.stack([shared, hidden[:, m]], axis=1) for m in range(k)]
    elif mode == "unique":
        label = (hidden[:, informative] > 0).astype(int)
        sources = [np.stack([hidden[:, m], rng.normal(size=n)], axis=1) for m in range(k)]
    elif mode == "synergy":
        label = ((hidden[:, 0] > 0) ^ (hidden[:, 1] > 0)).astype(int)
        sources = [np.stack([hidden[:, m], rng.normal(size=n)], axis=1) for m in range(k)]
    else:  # mixed
        redundant_bit = shared > 0
        synergy_bit = (hidden[:, 0] > 0) ^ (hidden[:, 1] > 0)
        label = 2 * redundant_bit.astype(int) + synergy_bit.astype(int)
        sources = [np.stack([shared, hidden[:, m]], axis=1) for m in range(k)]
    features = [np.tanh(src @ mix) + noise * rng.normal(size=(n, dim)) for src, mix in zip(sources, mixing)]
    return features, label


def _as_sequence(rng: np.random.Generator, values: np.ndarray, seq_len: int, noise: float) -> np.ndarray:
    """Spread a vector over ``seq_len`` noisy steps whose mean recovers it."""
    steps = values[:, None, :] + noise * rng.normal(size=(values.shape[0], seq_len, values.shape[1]))
    return steps
