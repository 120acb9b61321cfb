"""``audio.pretrained``: a Hugging Face waveform model (wav2vec 2.0, HuBERT, WavLM...) from a local path.

The checkpoint directory comes from the ``path`` argument or ``MMBENCH_AUDIO_MODEL``; nothing is
downloaded. The default ``waveform`` is resampled on the device to the checkpoint's sampling
rate (``preprocessor_config.json``, else 16 kHz) and normalised per clip when the checkpoint's
feature extractor does so.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from mmbench import Categorical, ConfigError, Encoded, ModalityInfo, Preprocessor
from mmbench.hf import CheckpointPreprocessor, PretrainedEncoder, read_preprocessor_config
from mmbench_audio.frontend import sample_rate


class PretrainedAudio(PretrainedEncoder):
    """A pretrained speech/audio transformer over the raw waveform; frame states as tokens."""

    name = "audio.pretrained"
    modality = "audio"
    env_var = "MMBENCH_AUDIO_MODEL"
    description = "pretrained Hugging Face waveform model (wav2vec 2.0, HuBERT, ...) from MMBENCH_AUDIO_MODEL, frozen or fine-tuned"
    paper = "Baevski et al., 2020, wav2vec 2.0; Hsu et al., 2021, HuBERT"
    space = {"finetune": Categorical([False, True])}

    def __init__(self, info: ModalityInfo, finetune: bool = False, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(info)
        directory = self._load(path, finetune)
        if getattr(self.backbone, "main_input_name", "input_values") != "input_values" or hasattr(self.backbone.config, "num_mel_bins"):
            raise ConfigError(
                f"encoder '{self.name}': {directory} is not a waveform model (e.g. wav2vec 2.0, HuBERT, WavLM)"
            )
        settings = read_preprocessor_config(directory)
        self.source_rate = sample_rate(info, self.name)
        self.target_rate = int(settings.get("sampling_rate", 16000))
        self.normalize = bool(settings.get("do_normalize", True))
        self.out_dim = int(self.backbone.config.hidden_size)

    @classmethod
    def preprocessor(cls, info: ModalityInfo, **hyperparameters: Any) -> Preprocessor | None:
        return CheckpointPreprocessor(info, cls.checkpoint(hyperparameters.get("path")))

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        waveform = batch["waveform"].float()
        if self.source_rate != self.target_rate:
            length = round(waveform.shape[-1] * self.target_rate / self.source_rate)
            waveform = F.interpolate(waveform.unsqueeze(1), size=length, mode="linear", align_corners=False).squeeze(1)
        if self.normalize:
            waveform = (waveform - waveform.mean(dim=1, keepdim=True)) / torch.sqrt(waveform.var(dim=1, keepdim=True, unbiased=False) + 1e-7)
        tokens = self._backbone_call(input_values=waveform).last_hidden_state
        return Encoded(pooled=tokens.mean(dim=1), tokens=tokens)
