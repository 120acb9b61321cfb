"""Convolutional image encoders trained from scratch: ``image.cnn`` and ``image.resnet``.

Both return the final feature map's positions as tokens ``(B, h*w, C)`` (so attention fusions
can attend to image regions) and their mean as the pooled vector. Downsampling stops along a
dimension once it is 1 pixel, so every sampled configuration builds on tiny images.
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench import Encoded, Encoder, Float, Int, ModalityInfo
from mmbench.nn import ConvStack, ResNetStack, feature_map_output, image_shape


class SmallCNNImage(Encoder):
    """A few conv-BN-ReLU-pool blocks: the fast baseline for small images."""

    name = "image.cnn"
    modality = "image"
    description = "small CNN from scratch (conv-BN-ReLU-maxpool blocks); regions as tokens"
    paper = "LeCun et al., 1998, Gradient-Based Learning Applied to Document Recognition"
    space = {"width": Int(8, 32, log=True), "n_blocks": Int(1, 3), "dropout": Float(0.0, 0.3)}

    def __init__(self, info: ModalityInfo, width: int = 16, n_blocks: int = 2, dropout: float = 0.1) -> None:
        super().__init__(info)
        channels, height, width_px = image_shape(info, self.name)
        self.stack = ConvStack(channels, (height, width_px), width=width, n_blocks=n_blocks)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = self.stack.out_channels

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        return feature_map_output(self.stack(batch["pixels"]), self.dropout)


class ResNetImage(Encoder):
    """A small residual network trained from scratch."""

    name = "image.resnet"
    modality = "image"
    description = "ResNet-style CNN from scratch (basic residual blocks); regions as tokens"
    paper = "He et al., 2016, Deep Residual Learning for Image Recognition"
    space = {
        "width": Int(8, 32, log=True),
        "n_stages": Int(1, 3),
        "blocks_per_stage": Int(1, 2),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(
        self, info: ModalityInfo, width: int = 16, n_stages: int = 2, blocks_per_stage: int = 1, dropout: float = 0.1
    ) -> None:
        super().__init__(info)
        channels, height, width_px = image_shape(info, self.name)
        self.stack = ResNetStack(channels, (height, width_px), width=width, n_stages=n_stages, blocks_per_stage=blocks_per_stage)
        self.dropout = nn.Dropout(dropout)
        self.out_dim = self.stack.out_channels

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        return feature_map_output(self.stack(batch["pixels"]), self.dropout)
