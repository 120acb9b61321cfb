"""Audio encoders trained from scratch on the default ``waveform`` ``(B, L)``."""

from __future__ import annotations

import torch
from torch import nn

from mmbench import Categorical, ConfigError, Encoded, Encoder, Float, Int, ModalityInfo
from mmbench.nn import AttentionPool, ConvStack
from mmbench_audio.frontend import MFCC, LogMel, sample_rate


def n_samples(info: ModalityInfo, encoder: str) -> int:
    if not info.n_samples:
        raise ConfigError(f"encoder '{encoder}': modality '{info.name}' has no n_samples (was it preprocessed?)")
    return int(info.n_samples)


class MelCNNAudio(Encoder):
    """Log-mel spectrogram (on the device) read as a one-channel image by the ``image.cnn`` stack.

    Tokens are time steps: the feature map averaged over frequency.
    """

    name = "audio.melcnn"
    modality = "audio"
    description = "log-mel spectrogram (torch.stft, on device) + CNN; time steps as tokens"
    paper = "Hershey et al., 2017, CNN Architectures for Large-Scale Audio Classification"
    space = {
        "n_mels": Categorical([32, 40, 64]),
        "width": Int(8, 32, log=True),
        "n_blocks": Int(2, 4),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(self, info: ModalityInfo, n_mels: int = 40, width: int = 16, n_blocks: int = 3, dropout: float = 0.1) -> None:
        super().__init__(info)
        self.log_mel = LogMel(sample_rate(info, self.name), n_mels)
        frames = self.log_mel.n_frames(n_samples(info, self.name))
        self.norm = nn.BatchNorm2d(1)
        self.stack = ConvStack(1, (n_mels, frames), width=width, n_blocks=n_blocks)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = self.stack.out_channels

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        spectrogram = self.norm(self.log_mel(batch["waveform"]).unsqueeze(1))
        features = self.stack(spectrogram)  # (B, C, mel', time')
        tokens = self.dropout(features.mean(dim=2).transpose(1, 2))
        return Encoded(pooled=tokens.mean(dim=1), tokens=tokens)


class MFCCGRUAudio(Encoder):
    """MFCC frames read by a (bi)GRU, pooled by attention: the classic speech-command recipe."""

    name = "audio.mfccgru"
    modality = "audio"
    description = "MFCC (on device) + bidirectional GRU with attention pooling; frames as tokens"
    paper = "Davis & Mermelstein, 1980 (MFCC); Cho et al., 2014 (GRU)"
    space = {
        "n_mfcc": Int(13, 40),
        "hidden": Int(16, 128, log=True),
        "n_layers": Int(1, 2),
        "bidirectional": Categorical([True, False]),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(
        self,
        info: ModalityInfo,
        n_mfcc: int = 20,
        hidden: int = 64,
        n_layers: int = 1,
        bidirectional: bool = True,
        dropout: float = 0.1,
    ) -> None:
        super().__init__(info)
        self.mfcc = MFCC(sample_rate(info, self.name), n_mfcc, n_mels=40)
        self.gru = nn.GRU(
            n_mfcc, hidden, num_layers=n_layers, batch_first=True, bidirectional=bidirectional, dropout=dropout if n_layers > 1 else 0.0
        )
        self.out_dim = hidden * (2 if bidirectional else 1)
        self.dropout = nn.Dropout(dropout)
        self.pool = AttentionPool(self.out_dim)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        states, _ = self.gru(self.mfcc(batch["waveform"]))
        tokens = self.dropout(states)
        return Encoded(pooled=self.pool(tokens), tokens=tokens)
