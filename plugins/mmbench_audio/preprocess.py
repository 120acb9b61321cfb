"""Default audio preprocessing: decode (soundfile), mix to mono, resample, crop/pad to one length.

Resampling is band-limited (FFT) in numpy, so no torchaudio or FFmpeg is needed. Decoded,
resampled waveforms are cached on disk (mmbench's media cache, :func:`mmbench.decode_chunks`) when the column holds file
paths, so a second process does not decode thousands of WAVs again; clips are decoded a chunk of
rows at a time, so no step holds a whole split's waveforms twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from mmbench import (
    ConfigError,
    ModalityInfo,
    Preprocessor,
    Tensors,
    audio_rate,
    column_items,
    crop_or_pad,
    decode_chunks,
    decode_each,
    read_audio,
    resample,
)

if TYPE_CHECKING:
    import datasets

_PROBE = 64  # training clips whose headers choose the sample rate


class AudioPreprocessor(Preprocessor):
    """An audio column -> ``waveform`` float (B, L) at ``sample_rate``, each clip cut or zero-padded to L.

    Waveforms keep libsndfile's -1..1 scale (no standardisation), so encoders that compute
    spectrograms see real amplitudes.

    Args:
        info: the audio modality (one column of paths or ``{"array", "sampling_rate"}`` cells).
        sample_rate: target rate; default: the most common rate among the first training clips.
        seconds: clip length; default: the 95th percentile of training durations, at most ``max_seconds``.
        max_seconds: cap on the fitted length.
    """

    def __init__(
        self, info: ModalityInfo, *, sample_rate: int | None = None, seconds: float | None = None, max_seconds: float = 10.0
    ) -> None:
        super().__init__(info)
        if (sample_rate is not None and sample_rate <= 0) or (seconds is not None and seconds <= 0) or max_seconds <= 0:
            raise ConfigError(f"audio preprocessing of '{info.name}': sample_rate, seconds and max_seconds must be positive")
        self.sample_rate, self.seconds, self.max_seconds = sample_rate, seconds, max_seconds
        self.n_samples: int | None = None

    def options(self) -> dict[str, object]:
        return {"sample_rate": self.sample_rate, "seconds": self.seconds, "max_seconds": self.max_seconds}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        (column,) = self.info.columns
        if self.sample_rate is None:
            probe = column_items(train.select(range(min(_PROBE, train.num_rows))), column)
            rates = decode_each(probe, column, audio_rate)
            self.sample_rate = Counter(rates).most_common(1)[0][0]
        lengths = np.concatenate([np.diff(arrays["offsets"]) for _, arrays in self._chunks(train)])
        if self.seconds is not None:
            self.n_samples = max(1, int(round(self.seconds * self.sample_rate)))
        else:
            fitted = int(np.ceil(np.percentile(lengths, 95))) if lengths.size else 1
            self.n_samples = max(1, min(fitted, int(self.max_seconds * self.sample_rate)))
        return self.info.with_updates(sample_rate=int(self.sample_rate), n_samples=int(self.n_samples))

    def transform(self, split: datasets.Dataset) -> Tensors:
        if self.n_samples is None:
            raise RuntimeError("AudioPreprocessor.transform called before fit")
        waveform = torch.empty((split.num_rows, self.n_samples), dtype=torch.float32)
        for rows, arrays in self._chunks(split):
            values, offsets = arrays["values"], arrays["offsets"]
            waves = [values[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            waveform[rows] = torch.from_numpy(crop_or_pad(waves, self.n_samples))
        return {"waveform": waveform}

    def _chunks(self, split: datasets.Dataset) -> Iterator[tuple[slice, dict[str, np.ndarray]]]:
        """Clips at the target rate, a chunk of rows at a time: ``values`` concatenated, (rows + 1) ``offsets``."""
        (column,) = self.info.columns
        rate = int(self.sample_rate or 0)

        def compute(items: list[Any], first_row: int) -> dict[str, np.ndarray]:
            waves = decode_each(items, column, lambda item: resample(*read_audio(item), rate), first_row=first_row)
            offsets = np.concatenate([[0], np.cumsum([w.size for w in waves])]).astype(np.int64)
            values = np.concatenate(waves).astype(np.float32) if waves else np.zeros(0, np.float32)
            return {"values": values, "offsets": offsets}

        return decode_chunks(split, column, f"audio|{rate}", compute)
