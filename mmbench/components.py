"""Base classes of the model components plugins provide: :class:`Encoder` and :class:`Fusion`.

The contract lives here. A component declares ``name``, ``space`` (and, for encoders,
``modality``) on the class, so listing components and building a search space never
instantiates a model. Instances are ordinary ``torch.nn.Module`` objects.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from mmbench.errors import ConfigError
from mmbench.space import Space

if TYPE_CHECKING:
    from mmbench.data.preprocess.contract import Preprocessor
    from mmbench.data.schema import ModalityInfo

Batch = Mapping[str, torch.Tensor]


@dataclass
class Encoded:
    """What an encoder returns for a batch of ``B`` examples.

    Attributes:
        pooled: ``(B, D)`` one vector per example.
        tokens: ``(B, T, D)`` per-position vectors (words, patches, frames), or ``None`` when
            the modality has no meaningful positions. Same ``D`` as ``pooled``.
        mask: ``(B, T)`` boolean, ``True`` where ``tokens`` holds a real position; ``None``
            means every position is real.
    """

    pooled: torch.Tensor
    tokens: torch.Tensor | None = None
    mask: torch.Tensor | None = None

    def token_view(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(tokens, mask)``, treating a pooled-only output as a single token."""
        if self.tokens is None:
            tokens = self.pooled.unsqueeze(1)
            return tokens, torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        if self.mask is None:
            return self.tokens, torch.ones(self.tokens.shape[:2], dtype=torch.bool, device=self.tokens.device)
        return self.tokens, self.mask


class Encoder(nn.Module):
    """Maps one modality's batch of tensors to an :class:`Encoded`.

    Subclasses set the class attributes and implement ``__init__(info, **hyperparameters)``
    and :meth:`forward`. ``__init__`` must set ``self.out_dim`` (the ``D`` of the output).

    Class attributes:
        name: namespaced ``"<modality>.<short>"``, e.g. ``"text.gru"``.
        modality: the modality kind it reads (a registered :class:`mmbench.ModalityKind`'s name).
        space: hyperparameter name -> :class:`~mmbench.Int` / :class:`~mmbench.Float` /
            :class:`~mmbench.Categorical`; each is a keyword argument of ``__init__``.
        description: one line for ``mmbench plugins``.
        paper: the source the component follows, if any.
        expected_failures: conformance check name -> reason, for checks that do not apply.

    Example:
        >>> import torch
        >>> from mmbench import Encoded, Encoder, Int
        >>> class MeanVector(Encoder):
        ...     name = "embedding.mean"
        ...     modality = "embedding"
        ...     space = {"width": Int(8, 64)}
        ...     def __init__(self, info, width=16):
        ...         super().__init__(info)
        ...         self.proj = torch.nn.Linear(info.dim, width)
        ...         self.out_dim = width
        ...     def forward(self, batch):
        ...         return Encoded(pooled=self.proj(batch["values"]))
    """

    kind: ClassVar[str] = "encoder"
    name: ClassVar[str] = ""
    modality: ClassVar[str] = ""
    space: ClassVar[Space] = {}
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    expected_failures: ClassVar[Mapping[str, str]] = {}

    out_dim: int

    def __init__(self, info: ModalityInfo, **hyperparameters: Any) -> None:
        super().__init__()
        self.info = info

    @classmethod
    def preprocessor(cls, info: ModalityInfo, **hyperparameters: Any) -> Preprocessor | None:
        """The preprocessing this encoder needs, or ``None`` for the modality's default.

        Override to choose a tokenizer, image processor or sample rate; the data layer runs
        it once per data set and caches the tensors under the preprocessor's ``key``.
        """
        return None

    @classmethod
    def is_frozen(cls, **hyperparameters: Any) -> bool:
        """Whether, with these hyperparameters, the encoder has no trainable parameters.

        Frozen encoders' outputs are computed once and cached across trials.
        """
        return False

    @classmethod
    def cache_params(cls, **hyperparameters: Any) -> dict[str, Any]:
        """The hyperparameters a frozen encoder's cached outputs depend on (default: all of them).

        Leave out those that only change a cheap step :meth:`from_cache` redoes on the cached
        outputs (a pooling choice): trials that differ only in them then share one feature pass.
        """
        return dict(hyperparameters)

    @classmethod
    def from_cache(cls, encoded: Encoded, **hyperparameters: Any) -> Encoded:
        """A trial's outputs from cached ones computed with other values of the hyperparameters
        :meth:`cache_params` leaves out (default: the cached outputs as they are)."""
        return encoded

    @classmethod
    def unavailable_reason(cls) -> str | None:
        """Why this encoder cannot run here (a missing checkpoint or optional package), or ``None``.

        The default search space leaves unavailable encoders out instead of failing trials;
        naming one explicitly (``--encoders``) turns the reason into a configuration error.
        """
        return None

    @classmethod
    def example_info(cls) -> ModalityInfo | None:
        """The fitted modality the conformance kit (:mod:`mmbench.testing.kit`) builds this encoder for.

        ``None`` (the default) lets the kit choose small sizes for the modality kind. Override
        when the encoder needs a particular shape, e.g. sequences only.
        """
        return None

    @classmethod
    def example_batch(cls, info: ModalityInfo, batch_size: int, seed: int) -> Batch | None:
        """A batch of ``batch_size`` rows for ``info`` that the conformance kit feeds the encoder.

        ``None`` (the default) lets the kit run the encoder's own :meth:`preprocessor` on
        generated rows, or make a random batch in the kind's default format.
        """
        return None

    def missing(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The batch as it looks when this modality is absent (robustness and contribution tests).

        The default zeroes every tensor: float inputs become zeros (the mean of standardised
        features), boolean masks become all-``False`` and integer ids become ``0`` (padding /
        unknown). Override when "absent" means something else for an encoder, e.g. a learned
        placeholder token or a ``[MASK]`` id.
        """
        return {key: torch.zeros_like(value) for key, value in batch.items()}

    def forward(self, batch: Batch) -> Encoded:  # pragma: no cover - abstract
        raise NotImplementedError


class Fusion(nn.Module):
    """Maps ``{modality: Encoded}`` to logits ``(B, n_outputs)``.

    Early fusion (concatenate, then one head), late fusion (a head per modality, decisions
    combined) and everything in between fit this one contract.

    Class attributes:
        name: a short unique name, e.g. ``"tfn"``.
        space: hyperparameters, keyword arguments of ``__init__``.
        min_modalities: fewer encoded modalities than this is a configuration error.
        batchable: its ``forward`` works under ``torch.vmap`` (no in-place updates of parameters or
            buffers, no data-dependent Python control flow), so trials of one structure can be
            trained as one batched model (``--batch-trials``, :mod:`mmbench.train.batched`).
        reads_tokens: its ``forward`` may read ``Encoded.tokens`` / ``mask`` (or ``token_view()``);
            ``False`` promises it reads only ``Encoded.pooled``, so a trial on a frozen encoder's
            cached features is given each row's pooled vector, computed once per trial, instead
            of its per-token states gathered every batch (:mod:`mmbench.train.features`).
        description, paper, expected_failures: as for :class:`Encoder`.

    Constructor arguments:
        dims: modality name -> ``D`` of that modality's :class:`Encoded`.
        n_outputs: number of logits.
    """

    kind: ClassVar[str] = "fusion"
    name: ClassVar[str] = ""
    space: ClassVar[Space] = {}
    min_modalities: ClassVar[int] = 1
    batchable: ClassVar[bool] = False
    reads_tokens: ClassVar[bool] = True
    description: ClassVar[str] = ""
    paper: ClassVar[str] = ""
    expected_failures: ClassVar[Mapping[str, str]] = {}

    def __init__(self, dims: Mapping[str, int], n_outputs: int, **hyperparameters: Any) -> None:
        super().__init__()
        if len(dims) < self.min_modalities:
            raise ConfigError(f"fusion '{self.name}' needs at least {self.min_modalities} modalities, got {len(dims)}")
        self.dims = dict(dims)
        self.n_outputs = n_outputs

    def forward(self, encoded: Mapping[str, Encoded]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
