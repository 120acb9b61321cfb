"""``video.frames``: each frame through the ``image.cnn`` stack, then pooling over time.

Frames are encoded independently (the "single frame + late pooling" family of Karpathy et al.,
2014), so the per-frame cost is that of a small image; temporal structure comes from the
pooling: a mean, additive attention, or a GRU over the frame vectors (Donahue et al., 2015).
"""

from __future__ import annotations

import torch
from torch import nn

from mmbench import Categorical, ConfigError, Encoded, Encoder, Float, Int, ModalityInfo
from mmbench.nn import AttentionPool, ConvStack, image_shape

TEMPORAL_POOLING = ("mean", "attention", "gru")


class FramesVideo(Encoder):
    """Per-frame CNN + temporal pooling; frames as tokens."""

    name = "video.frames"
    modality = "video"
    description = "per-frame small CNN + temporal pooling (mean | attention | GRU); frames as tokens"
    paper = "Karpathy et al., 2014, Large-scale Video Classification with CNNs; Donahue et al., 2015 (LRCN)"
    space = {
        "width": Int(8, 32, log=True),
        "n_blocks": Int(1, 3),
        "temporal": Categorical(list(TEMPORAL_POOLING)),
        "dropout": Float(0.0, 0.3),
    }

    def __init__(self, info: ModalityInfo, width: int = 16, n_blocks: int = 2, temporal: str = "mean", dropout: float = 0.1) -> None:
        super().__init__(info)
        if temporal not in TEMPORAL_POOLING:
            raise ConfigError(f"encoder '{self.name}': temporal must be one of {', '.join(TEMPORAL_POOLING)}, got {temporal!r}")
        channels, height, width_px = image_shape(info, self.name)
        self.stack = ConvStack(channels, (height, width_px), width=width, n_blocks=n_blocks)
        dim = self.stack.out_channels
        self.temporal = temporal
        self.gru = nn.GRU(dim, dim, batch_first=True) if temporal == "gru" else None
        self.pool = AttentionPool(dim) if temporal == "attention" else None
        self.dropout = nn.Dropout(dropout)
        self.out_dim = dim

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        frames = batch["frames"]
        n_batch, n_frames = frames.shape[:2]
        per_frame = self.stack(frames.flatten(0, 1)).mean(dim=(2, 3)).view(n_batch, n_frames, -1)
        tokens = self.dropout(per_frame)
        if self.gru is not None:
            tokens, last = self.gru(tokens)
            return Encoded(pooled=last[-1], tokens=tokens)
        if self.pool is not None:
            return Encoded(pooled=self.pool(tokens), tokens=tokens)
        return Encoded(pooled=tokens.mean(dim=1), tokens=tokens)
