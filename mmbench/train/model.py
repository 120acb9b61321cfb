"""Assembles one encoder per modality and a fusion into a single ``nn.Module``."""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping
from typing import TYPE_CHECKING

import torch
from torch import nn

from mmbench.train.auxiliary import build_auxiliary
from mmbench.components import Encoded, Encoder, Fusion
from mmbench.data.preprocess.base import Preprocessor, default_preprocessor
from mmbench.data.schema import ModalityInfo

if TYPE_CHECKING:
    from mmbench.search.trials import TrialConfig
    from mmbench.data.schema import Schema
    from mmbench.registry import Registry


class MultimodalModel(nn.Module):
    """Encoders (one per modality) followed by a fusion that produces logits.

    ``auxiliary`` is an optional training-only objective on the encodings (joint-space
    projections and their alignment loss, see :mod:`mmbench.train.auxiliary`); it lives on the model
    so its parameters are optimised and saved with it, and ``fit`` adds its loss.

    ``target_scale`` (a regression target's train mean and std) makes the fusion's output a
    standardised prediction that ``forward`` scales back to the target's units; it is a buffer,
    so a saved model predicts in those units too.
    """

    def __init__(self, encoders: Mapping[str, Encoder], fusion: Fusion, auxiliary: nn.Module | None = None,
                 *, target_scale: tuple[float, float] | None = None) -> None:
        super().__init__()
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.auxiliary = auxiliary
        self.target_scale: torch.Tensor | None
        self.register_buffer("target_scale", None if target_scale is None else torch.tensor(target_scale, dtype=torch.float32))

    def encode(self, inputs: Mapping[str, Mapping[str, torch.Tensor]]) -> dict[str, Encoded]:
        """Run every modality's encoder."""
        return {name: encoder(inputs[name]) for name, encoder in self.encoders.items()}

    def forward(self, inputs: Mapping[str, Mapping[str, torch.Tensor]]) -> tuple[torch.Tensor, dict[str, Encoded]]:
        """Logits ``(B, n_outputs)`` and the per-modality encodings (for auxiliary losses)."""
        encoded = self.encode(inputs)
        outputs = self.fusion(encoded)
        if self.target_scale is not None:
            outputs = outputs * self.target_scale[1] + self.target_scale[0]
        return outputs, encoded


def preprocessors_for(config: TrialConfig, schema: Schema, registry: Registry) -> dict[str, Preprocessor]:
    """Each modality's preprocessing: the chosen encoder's own, else the kind's default."""
    chosen: dict[str, Preprocessor] = {}
    for modality, info in schema.modalities.items():
        cls = registry.get_encoder(config.encoders[modality])
        chosen[modality] = cls.preprocessor(info, **config.encoder_params[modality]) or default_preprocessor(info)
    return chosen


#: held while a model is built: its components' seeds are torch's global one
_BUILDING = threading.Lock()


def build_model(config: TrialConfig, infos: Mapping[str, ModalityInfo], n_outputs: int, registry: Registry, *,
                prebuilt: Mapping[str, Encoder] | None = None, target_scale: tuple[float, float] | None = None) -> MultimodalModel:
    """Instantiate the configuration's encoders and fusion, seeded by ``config.seed``.

    Each component draws its initial weights from its own seed (``config.seed`` and its role), so
    an encoder given in ``prebuilt`` (a frozen one whose outputs are cached, :mod:`mmbench.train.features`)
    leaves the other components' weights exactly as they would be without it. ``target_scale``:
    see :class:`MultimodalModel` (``schema.target_scale`` of a regression task).
    """
    encoders: dict[str, Encoder] = {}
    with _BUILDING:  # torch's seed is global: trials built at once (--batch-trials, --n-jobs) would draw each other's
        for modality in config.encoders:
            if prebuilt and modality in prebuilt:
                encoders[modality] = prebuilt[modality]
                continue
            _seed_component(config.seed, f"encoder.{modality}")
            encoders[modality] = registry.create_encoder(config.encoders[modality], infos[modality], **config.encoder_params[modality])
        dims = {modality: int(encoder.out_dim) for modality, encoder in encoders.items()}
        _seed_component(config.seed, "fusion")
        fusion = registry.create_fusion(config.fusion, dims, n_outputs, **config.fusion_params)
        return MultimodalModel(encoders, fusion, build_auxiliary(config.train, dims), target_scale=target_scale)


def _seed_component(seed: int, role: str) -> None:
    """Seed torch's RNG for one component (a stable hash: Python's ``hash`` of a str varies per process)."""
    torch.manual_seed(zlib.crc32(f"{seed}:{role}".encode()))


def count_parameters(model: nn.Module, *, trainable_only: bool = True) -> int:
    """Number of (trainable) parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
