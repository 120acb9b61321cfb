"""The audio kind's ``data.degrade`` operations: ``noise`` and ``bandlimit``.

Degrading decodes the column (through the on-disk cache when it holds file paths), changes
each clip at its own sample rate and replaces the column with ``{"array", "sampling_rate"}``
cells, which the default preprocessor reads like files.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from mmbench import ConfigError, Rngs, decode_column, decode_each, read_audio, replace_column

if TYPE_CHECKING:
    import datasets


def noise(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """White noise at ``snr_db`` decibels of signal-to-noise ratio per clip."""
    snr_db = float(op["snr_db"])
    return _each_clip(splits, columns, rngs, lambda wave, rate, rng: _noise(wave, snr_db, rng))


def bandlimit(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], op: Mapping[str, Any], rngs: Rngs
) -> dict[str, datasets.Dataset]:
    """Frequencies outside ``low_hz`` .. ``high_hz`` removed."""
    low_hz, high_hz = float(op["low_hz"]), float(op["high_hz"])
    return _each_clip(splits, columns, rngs, lambda wave, rate, rng: _bandlimit(wave, rate, low_hz, high_hz))


def _each_clip(
    splits: Mapping[str, datasets.Dataset], columns: Sequence[str], rngs: Rngs,
    change: Callable[[np.ndarray, int, np.random.Generator], np.ndarray],
) -> dict[str, datasets.Dataset]:
    """``change(wave, rate, rng)`` applied to every clip of the column, one generator per split."""
    (column,) = columns
    out = {}
    for name, split in splits.items():
        waves, rates = _waves(split, column)
        rng = rngs(name)
        waves = [change(wave, rate, rng) for wave, rate in zip(waves, rates)]
        out[name] = replace_column(split, column, _audio_array(waves, rates))
    return out


def _waves(split: datasets.Dataset, column: str) -> tuple[list[np.ndarray], list[int]]:
    def compute(items: list[Any]) -> dict[str, np.ndarray]:
        decoded = decode_each(items, column, read_audio)
        waves = [w for w, _ in decoded]
        offsets = np.concatenate([[0], np.cumsum([w.size for w in waves])]).astype(np.int64)
        values = np.concatenate(waves) if waves else np.zeros(0, np.float32)
        return {
            "values": values.astype(np.float32),
            "offsets": offsets,
            "rates": np.array([r for _, r in decoded], dtype=np.int64),
        }

    arrays = decode_column(split, column, "degrade-audio|native", compute)
    offsets = arrays["offsets"]
    waves = [arrays["values"][a:b] for a, b in zip(offsets[:-1], offsets[1:])]
    return waves, [int(r) for r in arrays["rates"]]


def _noise(wave: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(wave.astype(np.float64) ** 2)) if wave.size else 0.0
    scale = np.sqrt(power / 10 ** (snr_db / 10)) if power > 0 else 0.0
    return (wave + scale * rng.standard_normal(wave.size)).astype(np.float32)


def _bandlimit(wave: np.ndarray, rate: int, low_hz: float, high_hz: float) -> np.ndarray:
    if low_hz >= high_hz:
        raise ConfigError(f"data.degrade: bandlimit needs low_hz < high_hz, got {low_hz} >= {high_hz}")
    spectrum = np.fft.rfft(wave)
    frequencies = np.fft.rfftfreq(wave.size, d=1.0 / rate)
    spectrum[(frequencies < low_hz) | (frequencies > high_hz)] = 0
    return np.fft.irfft(spectrum, n=wave.size).astype(np.float32)


def _audio_array(waves: list[np.ndarray], rates: list[int]) -> Any:
    import pyarrow as pa

    offsets = np.concatenate([[0], np.cumsum([w.size for w in waves])]).astype(np.int32)
    values = pa.array(np.concatenate(waves).astype(np.float32) if waves else np.zeros(0, np.float32))
    arrays = pa.ListArray.from_arrays(pa.array(offsets), values)
    return pa.StructArray.from_arrays([arrays, pa.array(np.asarray(rates, dtype=np.int64))], names=["array", "sampling_rate"])
