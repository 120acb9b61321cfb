"""Log-mel spectrogram and MFCC as ``nn.Module`` s, computed with ``torch.stft`` on the model's device."""

from __future__ import annotations

import math

import torch
from torch import nn

from mmbench import ConfigError, ModalityInfo


def sample_rate(info: ModalityInfo, encoder: str) -> int:
    """The fitted sample rate of an audio modality."""
    if not info.sample_rate:
        raise ConfigError(f"encoder '{encoder}': modality '{info.name}' has no sample_rate (was it preprocessed?)")
    return int(info.sample_rate)


class LogMel(nn.Module):
    """Waveform ``(B, L)`` -> log-mel spectrogram ``(B, n_mels, frames)``.

    25 ms Hann windows every 10 ms (the usual speech settings), FFT of at least 512 points so the
    lowest mel filters are never empty at low sample rates, Slaney mel filterbank from
    ``transformers.audio_utils``. Computed in float32 even under autocast: bf16 power spectra
    lose the quiet bands.

    Args:
        sample_rate: samples per second of the input.
        n_mels: mel bands.
    """

    def __init__(self, sample_rate: int, n_mels: int) -> None:
        super().__init__()
        from transformers.audio_utils import mel_filter_bank

        self.win_length = max(2, round(0.025 * sample_rate))
        self.hop_length = max(1, round(0.010 * sample_rate))
        self.n_fft = max(512, 2 ** math.ceil(math.log2(self.win_length)))
        filters = mel_filter_bank(
            num_frequency_bins=self.n_fft // 2 + 1,
            num_mel_filters=n_mels,
            min_frequency=0.0,
            max_frequency=sample_rate / 2,
            sampling_rate=sample_rate,
            norm="slaney",
            mel_scale="slaney",
        )
        # Derived from the hyperparameters, so not part of the state dict.
        self.register_buffer("filters", torch.as_tensor(filters, dtype=torch.float32).T.contiguous(), persistent=False)
        self.register_buffer("window", torch.hann_window(self.win_length), persistent=False)
        self.n_mels = n_mels

    def n_frames(self, n_samples: int) -> int:
        """Frames produced for ``n_samples`` input samples."""
        return n_samples // self.hop_length + 1

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        with torch.autocast(device_type=waveform.device.type, enabled=False):
            spectrum = torch.stft(
                waveform.float(),
                self.n_fft,
                hop_length=self.hop_length,
                win_length=self.win_length,
                window=self.window,
                center=True,
                pad_mode="constant",
                return_complex=True,
            )
            power = spectrum.real.square() + spectrum.imag.square()
            return torch.log(torch.matmul(self.filters, power) + 1e-6)


def dct_matrix(n_coefficients: int, n_inputs: int) -> torch.Tensor:
    """Orthonormal DCT-II ``(n_coefficients, n_inputs)``: log-mel -> MFCC (Davis & Mermelstein, 1980)."""
    n = torch.arange(n_inputs, dtype=torch.float64)
    k = torch.arange(n_coefficients, dtype=torch.float64).unsqueeze(1)
    matrix = torch.cos(math.pi / n_inputs * (n + 0.5) * k) * math.sqrt(2.0 / n_inputs)
    matrix[0] /= math.sqrt(2.0)
    return matrix.float()


class MFCC(nn.Module):
    """Waveform ``(B, L)`` -> MFCCs ``(B, frames, n_mfcc)``, mean/variance normalised per clip over time."""

    def __init__(self, sample_rate: int, n_mfcc: int, n_mels: int = 40) -> None:
        super().__init__()
        if n_mfcc > n_mels:
            raise ConfigError(f"n_mfcc={n_mfcc} cannot exceed n_mels={n_mels}")
        self.log_mel = LogMel(sample_rate, n_mels)
        self.register_buffer("dct", dct_matrix(n_mfcc, n_mels), persistent=False)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        coefficients = torch.matmul(self.dct, self.log_mel(waveform)).transpose(1, 2)
        # Per-clip normalisation removes the channel/loudness offset (cepstral mean normalisation).
        mean = coefficients.mean(dim=1, keepdim=True)
        std = coefficients.std(dim=1, keepdim=True, unbiased=False)
        return (coefficients - mean) / (std + 1e-5)
