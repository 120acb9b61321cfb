"""Building blocks for plugin authors: the layers the built-in encoders and fusions share.

Public, so a third-party encoder reuses the same pooling, heads and conv stacks instead of
copying them (and a fix reaches every user).

Example:
    >>> import torch
    >>> head = mlp(8, 16, 3, n_layers=2)
    >>> head(torch.zeros(4, 8)).shape
    torch.Size([4, 3])
    >>> masked_mean(torch.ones(2, 3, 4), torch.tensor([[True, False, False], [False, False, False]])).sum().item()
    4.0
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import nn

from mmbench.components import Encoded
from mmbench.errors import ConfigError

if TYPE_CHECKING:
    from mmbench.data.schema import ModalityInfo

__all__ = ["AttentionPool", "BasicBlock", "ConvStack", "ResNetStack", "feature_map_output", "image_shape", "masked_mean", "mlp"]


def mlp(in_dim: int, hidden: int, out_dim: int, *, n_layers: int = 1, dropout: float = 0.0) -> nn.Sequential:
    """A ReLU MLP with ``n_layers`` hidden layers: the head most components need."""
    layers: list[nn.Module] = []
    width = in_dim
    for _ in range(n_layers):
        layers += [nn.Linear(width, hidden), nn.ReLU(), nn.Dropout(dropout)]
        width = hidden
    layers.append(nn.Linear(width, out_dim))
    return nn.Sequential(*layers)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of ``tokens`` ``(B, T, D)`` over the positions where ``mask`` ``(B, T)`` is true.

    A row with no real position (an empty text) averages to zero instead of NaN.
    """
    if mask is None:
        return tokens.mean(dim=1)
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


class AttentionPool(nn.Module):
    """Additive attention pooling ``(B, T, D) -> (B, D)``: a learned query scores each position.

    Follows the word attention of Yang et al., 2016 (Hierarchical Attention Networks): scores
    ``v . tanh(W h_t)``, softmax over real positions, weighted sum. Shared by every encoder that
    pools a sequence (RNN states, video frames), so masking is handled in one place.
    """

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        self.project = nn.Linear(dim, hidden or dim)
        self.score = nn.Linear(hidden or dim, 1, bias=False)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        scores = self.score(torch.tanh(self.project(tokens))).squeeze(-1)
        if mask is not None:
            # A row without any real position attends uniformly rather than producing NaN.
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
        weights = scores.softmax(dim=1).unsqueeze(-1)
        return (weights * tokens).sum(dim=1)


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
