"""Built-in audio encoders: log-mel CNN, MFCC + GRU, and pretrained Hugging Face audio models.

Spectrograms are computed with ``torch.stft`` inside ``forward``, on whatever device the model
runs on: the cached data stays raw waveforms and the feature settings become searchable.
"""

from __future__ import annotations

from mmbench import hookimpl


@hookimpl
def mmbench_modalities() -> list[type]:
    from mmbench_audio.kind import AudioKind

    return [AudioKind]


@hookimpl
def mmbench_encoders() -> list[type]:
    from mmbench_audio.encoders import MelCNNAudio, MFCCGRUAudio
    from mmbench_audio.pretrained import PretrainedAudio

    return [MelCNNAudio, MFCCGRUAudio, PretrainedAudio]
