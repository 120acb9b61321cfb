"""``timeseries.conv1d``: a small 1-D convolutional encoder for the example plugin's ``timeseries`` kind."""

from __future__ import annotations

import torch
from torch import nn

from mmbench import ConfigError, Encoded, Encoder, Float, Int, ModalityInfo
from mmbench.nn import masked_mean


class Conv1dSeries(Encoder):
    """Stacked dilated 1-D convolutions over time (same length out); steps as tokens, masked mean pooled."""

    name = "timeseries.conv1d"
    modality = "timeseries"
    description = "dilated 1-D convolutions over time; steps as tokens, masked mean (example plugin)"
    paper = "Bai et al., 2018, An Empirical Evaluation of Generic Convolutional and Recurrent Networks for Sequence Modeling"
    space = {"width": Int(8, 64, log=True), "n_layers": Int(1, 3), "dropout": Float(0.0, 0.3)}

    def __init__(self, info: ModalityInfo, width: int = 32, n_layers: int = 2, dropout: float = 0.1) -> None:
        super().__init__(info)
        if not info.dim:
            raise ConfigError(f"encoder '{self.name}': modality '{info.name}' has no dim (was it preprocessed?)")
        layers: list[nn.Module] = []
        channels = int(info.dim)
        for layer in range(n_layers):
            layers += [nn.Conv1d(channels, width, kernel_size=3, padding=2**layer, dilation=2**layer), nn.ReLU(), nn.Dropout(dropout)]
            channels = width
        self.net = nn.Sequential(*layers)
        self.out_dim = width

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        mask = batch["mask"]
        values = batch["values"] * mask[..., None]  # padding never leaks into real steps' features
        tokens = self.net(values.transpose(1, 2)).transpose(1, 2)
        return Encoded(pooled=masked_mean(tokens, mask), tokens=tokens, mask=mask)
