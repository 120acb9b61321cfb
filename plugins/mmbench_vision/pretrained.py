"""``image.pretrained``: a Hugging Face vision backbone (ResNet, ConvNeXt, ViT, ...) from a local path.

The checkpoint directory comes from the ``path`` argument or ``MMBENCH_IMAGE_MODEL``; nothing is
downloaded. Inputs are the default ``pixels``, normalised with the checkpoint's ``image_mean`` /
``image_std`` when its ``preprocessor_config.json`` declares them (else standardised per data
set, which is close); grey images are repeated to the checkpoint's channels and resized on the
device to the size the checkpoint declares, so the cached tensors stay at the data set's own
(small) resolution.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F

from mmbench import Categorical, ConfigError, Encoded, ModalityInfo, Preprocessor
from mmbench.hf import CheckpointPreprocessor, PretrainedEncoder, read_preprocessor_config


def _target_size(preprocessor_config: dict[str, Any], model_config: Any) -> tuple[int, int] | None:
    """The input resolution a checkpoint declares (crop, then resize size, then the model's own)."""
    for key in ("crop_size", "size"):
        size = preprocessor_config.get(key)
        if isinstance(size, int):
            return (size, size)
        size = size if isinstance(size, dict) else {}
        if "height" in size and "width" in size:
            return (int(size["height"]), int(size["width"]))
        if "shortest_edge" in size:
            return (int(size["shortest_edge"]), int(size["shortest_edge"]))
    image_size = getattr(model_config, "image_size", None)
    if isinstance(image_size, int):
        return (image_size, image_size)
    if isinstance(image_size, (tuple, list)) and len(image_size) == 2:
        return (int(image_size[0]), int(image_size[1]))
    return None


class PretrainedImage(PretrainedEncoder):
    """A pretrained vision backbone; feature-map positions or patches as tokens, their mean pooled."""

    name = "image.pretrained"
    modality = "image"
    env_var = "MMBENCH_IMAGE_MODEL"
    description = "pretrained Hugging Face vision model (ResNet, ViT, ...) from MMBENCH_IMAGE_MODEL, frozen or fine-tuned"
    paper = "He et al., 2016 (ResNet); Dosovitskiy et al., 2021, An Image is Worth 16x16 Words (ViT)"
    space = {"finetune": Categorical([False, True])}

    def __init__(self, info: ModalityInfo, finetune: bool = False, *, path: str | os.PathLike[str] | None = None) -> None:
        super().__init__(info)
        directory = self._load(path, finetune)
        config = self.backbone.config
        self.in_channels = int(getattr(config, "num_channels", None) or 3)
        if info.channels and info.channels != 1 and info.channels < self.in_channels:
            raise ConfigError(
                f"encoder '{self.name}': modality '{info.name}' has {info.channels} channels; the checkpoint reads {self.in_channels}"
            )
        self.size = _target_size(read_preprocessor_config(directory), config)
        hidden_sizes = getattr(config, "hidden_sizes", None)
        self.out_dim = int(hidden_sizes[-1] if hidden_sizes else config.hidden_size)

    @classmethod
    def preprocessor(cls, info: ModalityInfo, **hyperparameters: Any) -> Preprocessor | None:
        """The default image preprocessing, normalised with the checkpoint's statistics when it declares them."""
        directory = cls.checkpoint(hyperparameters.get("path"))
        settings = read_preprocessor_config(directory)
        mean, std = settings.get("image_mean"), settings.get("image_std")
        if isinstance(mean, list) and isinstance(std, list) and len(mean) == len(std) == 3:
            from mmbench_vision.preprocess import ImagePreprocessor

            inner = ImagePreprocessor(info, channels=3, mean=tuple(mean), std=tuple(std))
            return CheckpointPreprocessor(info, directory, inner)
        return CheckpointPreprocessor(info, directory)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        pixels = batch["pixels"]
        if pixels.shape[1] == 1 and self.in_channels != 1:
            pixels = pixels.expand(-1, self.in_channels, -1, -1)
        elif pixels.shape[1] > self.in_channels:
            pixels = pixels[:, : self.in_channels]  # e.g. drop an alpha channel
        if self.size is not None and tuple(pixels.shape[-2:]) != self.size:
            pixels = F.interpolate(pixels, size=self.size, mode="bilinear", align_corners=False)
        hidden = self._backbone_call(pixel_values=pixels).last_hidden_state
        tokens = hidden.flatten(2).transpose(1, 2) if hidden.dim() == 4 else hidden
        return Encoded(pooled=tokens.mean(dim=1), tokens=tokens)
