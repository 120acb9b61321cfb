"""Assembles one encoder per modality and a fusion into a single ``nn.Module``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmbench.components import Encoded, Encoder, Fusion
from mmbench.data.preprocess import Preprocessor, default_preprocessor
from mmbench.data.schema import ModalityInfo

if TYPE_CHECKING:
    from mmbench.config import TrialConfig
    from mmbench.data.schema import Schema
    from mmbench.registry import Registry


class MultimodalModel(nn.Module):
    """Encoders (one per modality) followed by a fusion that produces logits."""

    def __init__(self, encoders: Mapping[str, Encoder], fusion: Fusion) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion

    def encode(self, inputs: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, Encoded]:
        """Run every modality's encoder."""
        return {name: encoder(inputs[name]) for name, encoder in self.encoders.items()}

    def forward(self, inputs: Mapping[str, Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, Encoded]]:
        """Logits ``(B, n_outputs)`` and the per-modality encodings (for auxiliary losses)."""
        encoded = self.encode(inputs)
        return self.fusion(encoded), encoded


def preprocessors_for(config: TrialConfig, schema: Schema, registry: Registry) -> dict[str, Preprocessor]:
    """Each modality's preprocessing: the chosen encoder's own, else the kind's default."""
    chosen: dict[str, Preprocessor] = {}
    for modality, info in schema.modalities.items():
        cls = registry.get_encoder(config.encoders[modality])
        chosen[modality] = cls.preprocessor(info, **config.encoder_params[modality]) or default_preprocessor(info)
    return chosen


def build_model(config: TrialConfig, infos: Mapping[str, ModalityInfo], n_outputs: int, registry: Registry) -> MultimodalModel:
    """Instantiate the configuration's encoders and fusion, seeded by ``config.seed``."""
    torch.manual_seed(config.seed)
    encoders = {
        modality: registry.create_encoder(config.encoders[modality], infos[modality], **config.encoder_params[modality])
        for modality in config.encoders
    }
    dims = {modality: int(encoder.out_dim) for modality, encoder in encoders.items()}
    fusion = registry.create_fusion(config.fusion, dims, n_outputs, **config.fusion_params)
    return MultimodalModel(encoders, fusion)


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
