"""Pretrained Hugging Face backbones from local paths: the shared part of every ``*.pretrained`` encoder.

Three things are the same whichever modality a pretrained encoder reads, so they live here once:

* where the checkpoint is (:func:`resolve_checkpoint`): an explicit ``path`` argument, else an
  environment variable such as ``MMBENCH_TEXT_MODEL``, else the encoder's default; nothing is
  ever downloaded, so a missing directory is a :class:`~mmbench.ConfigError` naming it;
* loading it (:func:`load_backbone`) with ``transformers.AutoModel`` and turning the library's
  many failure types into one readable error;
* frozen versus fine-tuned (:class:`PretrainedEncoder`): a frozen backbone has no trainable
  parameters, runs without autograd and stays in eval mode (no dropout) even while the model
  around it trains, which is what lets the trainer cache its outputs.

:class:`CheckpointPreprocessor` wraps a modality's default preprocessing and adds the
checkpoint to the cache key, for encoders that adapt the default tensors on the device
(resize images, resample audio) rather than tokenising themselves.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from mmbench.components import Encoder
from mmbench.data.preprocess.base import Preprocessor, Tensors, default_preprocessor
from mmbench.data.schema import ModalityInfo
from mmbench.errors import ConfigError, one_line
from mmbench.space import Categorical

if TYPE_CHECKING:
    import datasets
    from torch import nn

__all__ = ["CheckpointPreprocessor", "PretrainedEncoder", "load_backbone", "read_preprocessor_config", "resolve_checkpoint"]


def resolve_checkpoint(
    encoder: str,
    path: str | os.PathLike[str] | None,
    env_var: str,
    default: Callable[[], Path] | None = None,
) -> Path:
    """The local directory of an encoder's checkpoint.

    Args:
        encoder: the encoder's name, for messages.
        path: an explicit directory (wins when given).
        env_var: the environment variable users set to choose a checkpoint without code.
        default: returns the default directory (may raise ConfigError, e.g. a missing extra).

    Raises:
        ConfigError: no checkpoint is configured, or the directory does not exist.
    """
    chosen = path or os.environ.get(env_var)
    if chosen:
        source = "path" if path else env_var
        directory = Path(chosen).expanduser()
    elif default is not None:
        source, directory = "default checkpoint", default()
    else:
        raise ConfigError(f"encoder '{encoder}' needs a local Hugging Face checkpoint: set {env_var}=/path/to/model")
    if not (directory / "config.json").is_file():
        raise ConfigError(f"encoder '{encoder}': {source} {directory} is not a Hugging Face model directory (no config.json)")
    return directory.resolve()


def load_backbone(encoder: str, directory: Path) -> nn.Module:
    """Load ``transformers.AutoModel`` from a local directory, offline.

    Raises:
        ConfigError: the directory holds no model ``AutoModel`` can build.
    """
    from transformers import AutoModel
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # a weight-loading bar per trial would drown mmbench's own progress
    try:
        # explicit, not left to library defaults: no pickle code runs from .bin weights, no code from the folder
        return AutoModel.from_pretrained(str(directory), local_files_only=True, weights_only=True, trust_remote_code=False)
    except (OSError, ValueError, KeyError, ImportError) as error:
        reason = one_line(error, 300)
        raise ConfigError(f"encoder '{encoder}': cannot load a Hugging Face model from {directory}: {reason}") from None


def read_preprocessor_config(directory: Path) -> dict[str, Any]:
    """The checkpoint's ``preprocessor_config.json`` (sizes, sample rate), or ``{}`` when absent.

    Read as JSON rather than through ``AutoImageProcessor``/``AutoFeatureExtractor``, which may
    need optional image or audio libraries for settings the encoders apply themselves.
    """
    file = directory / "preprocessor_config.json"
    if not file.is_file():
        return {}
    return json.loads(file.read_text(encoding="utf-8"))


class PretrainedEncoder(Encoder):
    """Base of encoders that wrap a Hugging Face backbone, frozen or fine-tuned.

    Subclasses set ``env_var`` (and may override :meth:`default_checkpoint`), call
    :meth:`_load` in ``__init__`` and run the backbone through :meth:`_backbone_call`.

    Class attributes:
        env_var: environment variable that selects the checkpoint directory.
    """

    env_var: ClassVar[str] = ""
    space = {"finetune": Categorical([False, True])}

    backbone: nn.Module
    finetune: bool

    @classmethod
    def default_checkpoint(cls) -> Path:
        """The checkpoint used when neither ``path`` nor :attr:`env_var` is given."""
        raise ConfigError(f"encoder '{cls.name}' needs a local Hugging Face checkpoint: set {cls.env_var}=/path/to/model")

    @classmethod
    def checkpoint(cls, path: str | os.PathLike[str] | None = None) -> Path:
        """The directory this encoder loads, resolved as :func:`resolve_checkpoint` describes."""
        return resolve_checkpoint(cls.name, path, cls.env_var, cls.default_checkpoint)

    @classmethod
    def is_frozen(cls, **hyperparameters: Any) -> bool:
        return not hyperparameters.get("finetune", False)

    @classmethod
    def unavailable_reason(cls) -> str | None:
        try:
            cls.checkpoint()
        except ConfigError as error:
            return str(error)
        return None

    def _load(self, path: str | os.PathLike[str] | None, finetune: bool) -> Path:
        directory = self.checkpoint(path)
        self.backbone = load_backbone(self.name, directory)
        self.finetune = bool(finetune)
        if not self.finetune:
            self.backbone.requires_grad_(False)
            self.backbone.eval()
        else:
            _fix_unused(self.backbone)
            self.backbone.train(self.training)  # from_pretrained returns eval mode
        return directory

    def train(self, mode: bool = True) -> PretrainedEncoder:
        """Switch mode, keeping a frozen backbone in eval mode (its outputs must not vary)."""
        super().train(mode)
        if not self.finetune:
            self.backbone.eval()
        return self

    def _backbone_call(self, **inputs: torch.Tensor) -> Any:
        if self.finetune:
            return self.backbone(**inputs)
        with torch.no_grad():
            return self.backbone(**inputs)


def _fix_unused(backbone: nn.Module) -> None:
    """Keep fixed the weights a fine-tuned encoder never trains, so every trainable one gets gradients.

    Encoders pool ``last_hidden_state`` themselves, so a ``pooler`` head (BERT, ViT) is unused;
    wav2vec-style ``masked_spec_embed`` only fills time steps masked by SpecAugment, at random.
    """
    pooler = getattr(backbone, "pooler", None)
    if pooler is not None and hasattr(pooler, "requires_grad_"):
        pooler.requires_grad_(False)
    for name, parameter in backbone.named_parameters():
        if name.rsplit(".", 1)[-1] == "masked_spec_embed":
            parameter.requires_grad_(False)


class CheckpointPreprocessor(Preprocessor):
    """A modality's default preprocessing, keyed by the checkpoint that will read it.

    The tensors are the default ones (the encoder adapts them on the device); the checkpoint in
    :meth:`options` keeps cached features of two checkpoints apart, and :meth:`fit` records it
    in ``info.extra["checkpoint"]``.

    Args:
        info: the modality.
        checkpoint: the checkpoint directory.
        inner: the preprocessing to wrap (default: the modality kind's default), e.g. the
            default one configured with the checkpoint's normalisation statistics.
    """

    def __init__(self, info: ModalityInfo, checkpoint: Path, inner: Preprocessor | None = None) -> None:
        super().__init__(info)
        self.checkpoint = checkpoint
        self.inner = inner or default_preprocessor(info)

    def options(self) -> dict[str, object]:
        return {"checkpoint": str(self.checkpoint), "inner": self.inner.key}

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        info = self.inner.fit(train)
        return info.with_updates(extra={**dict(info.extra), "checkpoint": str(self.checkpoint)})

    def transform(self, split: datasets.Dataset) -> Tensors:
        return self.inner.transform(split)

