"""Convolutional image encoders trained from scratch: ``image.cnn`` and ``image.resnet``.

Both return the final feature map's positions as tokens ``(B, h*w, C)`` (so attention fusions
can attend to image regions) and their mean as the pooled vector. Downsampling stops along a
dimension once it is 1 pixel, so every sampled configuration builds on tiny images.
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench import Encoded, Encoder, Float, Int, ModalityInfo
from mmbench.errors import ConfigError


def image_shape(info: ModalityInfo, encoder: str) -> tuple[int, int, int]:
    """``(channels, height, width)`` from a fitted image/video info."""
    if not info.channels or not info.image_size:
        raise ConfigError(f"encoder '{encoder}': modality '{info.name}' has no channels/image_size (was it preprocessed?)")
    height, width = info.image_size
    return int(info.channels), int(height), int(width)


def _halve(size: tuple[int, int]) -> tuple[int, int]:
    """Kernel/stride that halves each dimension still larger than 1 (1 keeps it)."""
    return (2 if size[0] > 1 else 1, 2 if size[1] > 1 else 1)


def _after(size: tuple[int, int], factor: tuple[int, int]) -> tuple[int, int]:
    return (-(-size[0] // factor[0]), -(-size[1] // factor[1]))


class ConvStack(nn.Module):
    """``n_blocks`` of conv3x3 -> BatchNorm -> ReLU -> 2x2 max-pool, doubling the width each block.

    Args:
        in_channels: input channels.
        size: input ``(height, width)``; used to stop pooling at 1 pixel.
        width: channels of the first block.
        n_blocks: number of blocks.

    Attributes:
        out_channels: channels of the output feature map.
    """

    def __init__(self, in_channels: int, size: tuple[int, int], *, width: int, n_blocks: int) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = in_channels
        for block in range(n_blocks):
            out = width * 2**block
            factor = _halve(size)
            layers += [
                nn.Conv2d(channels, out, kernel_size=3, padding=1, bias=False),
                nn.BatchNorm2d(out),
                nn.ReLU(inplace=True),
                nn.MaxPool2d(factor, ceil_mode=True),
            ]
            channels, size = out, _after(size, factor)
        self.net = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


class BasicBlock(nn.Module):
    """The two-conv residual block of He et al., 2016, with a 1x1 projection when the shape changes."""

    def __init__(self, in_channels: int, out_channels: int, stride: tuple[int, int]) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != (1, 1) or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class ResNetStack(nn.Module):
    """A CIFAR-style ResNet trunk: 3x3 stem, then stages of basic blocks, stride 2 between stages.

    Attributes:
        out_channels: channels of the output feature map.
    """

    def __init__(self, in_channels: int, size: tuple[int, int], *, width: int, n_stages: int, blocks_per_stage: int) -> None:
        super().__init__()
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, width, 3, padding=1, bias=False),
            nn.BatchNorm2d(width),
            nn.ReLU(inplace=True),
        ]
        channels = width
        for stage in range(n_stages):
            out = width * 2**stage
            for block in range(blocks_per_stage):
                stride = _halve(size) if stage > 0 and block == 0 else (1, 1)
                layers.append(BasicBlock(channels, out, stride))
                channels, size = out, _after(size, stride)
        self.net = nn.Sequential(*layers)
        self.out_channels = channels

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.net(images)


def feature_map_output(features: torch.Tensor, dropout: nn.Module) -> Encoded:
    """Feature map ``(B, C, h, w)`` -> tokens ``(B, h*w, C)`` and their mean."""
    tokens = dropout(features.flatten(2).transpose(1, 2))
    return Encoded(pooled=tokens.mean(dim=1), tokens=tokens)


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
