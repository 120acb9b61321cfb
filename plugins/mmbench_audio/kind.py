"""The ``audio`` modality kind: sound files, encoded bytes or ``{"array", "sampling_rate"}`` rows."""

from __future__ import annotations

from typing import Any

from mmbench import Degradation, ModalityInfo, ModalityKind, Preprocessor, audio_header, read_audio
from mmbench_audio.degrade import bandlimit, noise


class AudioKind(ModalityKind):
    """An audio column -> ``waveform`` ``(B, L)`` float, mono, resampled and cropped or padded."""

    name = "audio"
    description = "sound files/arrays -> mono waveform at one sample rate, fixed length"
    info_fields = ("sample_rate", "n_samples")
    extensions = (".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".mp3")
    example_sizes = {"sample_rate": 8000, "n_samples": 4000}
    degradations = {
        "noise": Degradation(noise, {"snr_db": (None, -60.0, 120.0)}),
        "bandlimit": Degradation(bandlimit, {"low_hz": (0.0, 0.0, 1e6), "high_hz": (None, 1.0, 1e6)}),
    }

    @classmethod
    def check_file(cls, path: str) -> None:
        """A regular file whose header libsndfile reads; a float-sample file (the only kind that can
        hold NaN) is also decoded, so a NaN is a bad row named at preparation, not a failure of every trial."""
        super().check_file(path)
        if audio_header(str(path)).subtype in ("FLOAT", "DOUBLE"):
            read_audio(str(path))

    @classmethod
    def default_preprocessor(cls, info: ModalityInfo) -> Preprocessor:
        from mmbench_audio.preprocess import AudioPreprocessor

        return AudioPreprocessor(info)

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, generator: Any) -> dict[str, Any]:
        import torch

        return {"waveform": 0.1 * torch.randn((batch_size, int(info.n_samples or 4000)), generator=generator)}

    @classmethod
    def example_rows(cls, info: ModalityInfo, n_rows: int, rng: Any) -> dict[str, list[Any]]:
        import numpy as np

        return {
            c: [{"array": (0.1 * rng.normal(size=8000)).astype(np.float32), "sampling_rate": 16000} for _ in range(n_rows)]
            for c in info.columns
        }
