"""Feature cache for frozen encoders (the store): run a pretrained backbone over the data once, not once per batch.

A frozen encoder (``EncoderClass.is_frozen(**hp)`` is true: pretrained, not fine-tuned) maps the
same input to the same output in every trial, so its outputs (:class:`~mmbench.components.Encoded`
``pooled`` / ``tokens`` / ``mask``) for every split are computed once and reused; trials then
train only the fusion and head, which is what makes a search over a large backbone cheap.

The key of an entry is everything that changes the outputs: the encoder's name and
hyperparameters (those its ``cache_params`` names: text.pretrained's mean and [CLS] pooling share
one entry, re-pooled per trial by ``from_cache``), the modality (name and columns), the preprocessor's ``key`` (which names the
checkpoint for pretrained encoders), the checkpoint directory's file listing (names, sizes,
modification times: overwriting a checkpoint in place changes the key), the data fingerprint
and :data:`CACHE_VERSION`. Entries live in memory for the process (spilled to memory-mapped
files past the memory budget, :mod:`mmbench.data.storage.spill`) and on disk as one
``<sha256>.safetensors`` file each (no pickle) under ``--cache-dir`` (default: the user cache
folder, ``platformdirs.user_cache_dir("mmbench")/features``); the folder is kept under
``--cache-size-gb`` by evicting the least recently used entries.

In a trial, a cached modality's batch is ``{"pooled", "tokens"?, "mask"?}`` and its encoder is a
:class:`CachedEncoder`, which returns those tensors as an ``Encoded``. It mirrors the real
encoder's weights, so the model's ``state_dict`` is the one an uncached trial would have (the
saved best model reloads with :func:`mmbench.train.model.build_model`), and it still runs the real
encoder on raw batches.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from mmbench.components import Encoded, Encoder
from mmbench.data.provider import SPLITS
from mmbench.errors import ConfigError
from mmbench.train.features.compute import Allocate, FeaturePassStopped, compute_features
from mmbench.train.features.encoder import CachedEncoder
from mmbench.train.features.keys import CACHE_VERSION, entry_key

if TYPE_CHECKING:
    from mmbench.data.prepared import PreparedData, SplitTensors
    from mmbench.data.preprocess.base import Preprocessor, Tensors
    from mmbench.data.schema import ModalityInfo
    from mmbench.registry import Registry
    from mmbench.search.trials import TrialConfig

logger = logging.getLogger(__name__)

#: Default bound of the on-disk cache.
DEFAULT_SIZE_GB = 10.0
_SUFFIX = ".safetensors"


def default_cache_dir() -> Path | None:
    """``$MMBENCH_CACHE/features`` when that variable is set, else ``<user cache dir>/features``
    (e.g. ``~/.cache/mmbench/features`` on Linux); ``None`` (memory only) for ``MMBENCH_CACHE=off``,
    the switch the media cache (:mod:`mmbench.data.storage.media_cache`) already honours."""
    from mmbench.data.storage.media_cache import CACHE_VARIABLE, cache_dir

    if os.environ.get(CACHE_VARIABLE) is None:
        import platformdirs

        return Path(platformdirs.user_cache_dir("mmbench")) / "features"
    media = cache_dir()
    return None if media is None else media / "features"


#: Rows per chunk when a trial's pooled vectors are computed from cached token states.
POOL_CHUNK_ROWS = 1024


@dataclass
class _Entry:
    features: dict[str, Tensors]  # split -> {"pooled", "tokens"?, "mask"?}
    encoder: Encoder  # the real one, shared by the trials' CachedEncoders
    _pooled: dict[str, dict[str, Tensors]] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def pooled(self, params: Mapping[str, Any]) -> dict[str, Tensors]:
        """split -> ``{"pooled"}`` as the encoder's ``from_cache`` gives it for ``params``, computed once
        per distinct ``params`` (text.pretrained's mean and [CLS] pooling: two small tables)."""
        key = repr(sorted(params.items()))
        with self._lock:
            if key not in self._pooled:
                from_cache = type(self.encoder).from_cache
                self._pooled[key] = {split: {"pooled": _pool_rows(from_cache, tensors, params)}
                                     for split, tensors in self.features.items()}
            return self._pooled[key]


def _pool_rows(from_cache: Callable[..., Encoded], tensors: Tensors, params: Mapping[str, Any]) -> torch.Tensor:
    """``from_cache(...).pooled`` over every row of one split, a chunk at a time (spilled token
    states are read once, never whole)."""
    n_rows = int(tensors["pooled"].shape[0])
    chunks = []
    with torch.no_grad():
        for start in range(0, n_rows, POOL_CHUNK_ROWS):
            part = {k: v[start : start + POOL_CHUNK_ROWS] for k, v in tensors.items()}
            encoded = from_cache(Encoded(pooled=part["pooled"], tokens=part.get("tokens"), mask=part.get("mask")), **params)
            chunks.append(encoded.pooled.detach())
    return torch.cat(chunks) if chunks else tensors["pooled"][:0].clone()


@dataclass
class FeatureCache:
    """Frozen-encoder outputs per key, in memory for this process and on disk across processes.

    Args:
        root: folder of the on-disk entries (created when first written); ``None`` keeps
            entries in memory only.
        max_bytes: bound of the folder; least recently used entries are evicted past it.
        device: where features are computed (``auto``, ``cpu``, ``cuda``...).

    Attributes:
        hits: entries found (in memory or on disk) since this object was made.
        misses: entries computed since this object was made.
    """

    root: Path | None = None
    max_bytes: int = int(DEFAULT_SIZE_GB * 1e9)
    device: str = "auto"
    hits: int = 0
    misses: int = 0
    _memory: dict[str, _Entry] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _pass_seconds: dict[str, float] = field(default_factory=dict, repr=False)  # digest -> a pass stopped for want of time: its projected length

    @classmethod
    def from_options(cls, cache_dir: Path | str | None, size_gb: float | None, *, device: str = "auto") -> FeatureCache | None:
        """The cache ``--cache-dir``/``--cache-size-gb`` ask for; ``None`` when ``size_gb`` is 0 (off).

        Raises:
            ConfigError: a negative size.
        """
        size = DEFAULT_SIZE_GB if size_gb is None else float(size_gb)
        if size < 0:
            raise ConfigError(f"--cache-size-gb must be 0 (off) or positive, got {size_gb}")
        if size == 0:
            return None
        root = Path(cache_dir).expanduser() if cache_dir else default_cache_dir()
        return cls(root=root, max_bytes=int(size * 1e9), device=device)

    # -- the trial's view ---------------------------------------------------------------------

    def trial_inputs(
        self, config: TrialConfig, data: PreparedData, preprocessors: Mapping[str, Preprocessor], registry: Registry,
        *, deadline: float | Callable[[], bool] | None = None,
    ) -> tuple[dict[str, ModalityInfo], dict[str, SplitTensors], dict[str, Encoder]]:
        """A trial's fitted infos, split tensors and the encoders that stand in for frozen ones.

        Modalities whose chosen encoder is frozen get their cached features in place of the
        preprocessed inputs and a :class:`CachedEncoder`; the others are unchanged. When the
        trial's fusion reads only pooled vectors (``Fusion.reads_tokens`` is false), those
        features are the pooled vectors alone, computed once here rather than from every
        batch's gathered token states (measured on PetFinder with all-MiniLM-L6-v2: see
        ``benchmarks/batched.py``).

        Args:
            deadline: the trial's (``--time-limit``): a feature pass still running then stops
                (:class:`~mmbench.train.features.compute.FeaturePassStopped`).

        Returns:
            ``(infos, split -> SplitTensors, modality -> prebuilt encoder)`` for
            :func:`mmbench.train.model.build_model`.
        """
        from mmbench.data.prepared import SplitTensors

        infos, tensors = data.tensors(preprocessors)
        pooled_only = not registry.get_fusion(config.fusion).reads_tokens
        prebuilt: dict[str, Encoder] = {}
        for modality, name in config.encoders.items():
            params = dict(config.encoder_params[modality])
            if not registry.get_encoder(name).is_frozen(**params):
                continue
            raw = {split: tensors[split].inputs[modality] for split in SPLITS}
            entry = self._entry(name, params, infos[modality], preprocessors[modality].key, data.fingerprint, raw, registry,
                                allocate=data.allocate, deadline=deadline)
            if entry is None:
                continue
            prebuilt[modality] = CachedEncoder(entry.encoder, params, pooled_only=pooled_only)
            features = entry.pooled(params) if pooled_only else entry.features
            for split in SPLITS:
                tensors[split] = SplitTensors({**tensors[split].inputs, modality: features[split]}, tensors[split].labels)
        return infos, tensors, prebuilt

    # -- entries ------------------------------------------------------------------------------

    def _entry(self, name: str, params: dict[str, Any], info: ModalityInfo, preprocessor_key: str, fingerprint: str,
               raw: Mapping[str, Tensors], registry: Registry, allocate: Allocate | None = None,
               deadline: float | Callable[[], bool] | None = None) -> _Entry | None:
        description = entry_key(name, registry.get_encoder(name).cache_params(**params), info, preprocessor_key, fingerprint)
        digest = hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()
        with self._lock:  # --n-jobs threads: compute an entry once
            if digest in self._memory:
                self.hits += 1
                return self._memory[digest]
            encoder = registry.create_encoder(name, info, **params)
            if any(p.requires_grad for p in encoder.parameters()):
                logger.warning("encoder '%s' says it is frozen but has trainable parameters; not caching it", name)
                return None
            features = self._load(digest, description)
            if features is None:
                self._refuse_if_too_slow(digest, name, deadline)
                self.misses += 1
                prefix = f"features-{digest[:12]}"
                started = time.monotonic()
                try:
                    features = compute_features(
                        encoder, raw, device=self.device,
                        allocate=None if allocate is None else lambda name, shape, dtype: allocate(f"{prefix}-{name}", shape, dtype),
                        deadline=deadline,
                    )
                except FeaturePassStopped as stopped:
                    if stopped.projected_end is not None:
                        self._pass_seconds[digest] = stopped.projected_end - started
                    raise
                self._save(digest, description, features)
            else:
                self.hits += 1
            entry = _Entry(features, encoder)
            self._memory[digest] = entry
            return entry

    def _refuse_if_too_slow(self, digest: str, name: str, deadline: float | Callable[[], bool] | None) -> None:
        """A pass this search already stopped because it could not end in time is not started again
        before a deadline it cannot meet either (the next trials on the same encoder would each
        spend seconds finding that out)."""
        needed = self._pass_seconds.get(digest)
        if needed is None or not isinstance(deadline, (int, float)):
            return
        left = deadline - time.monotonic()
        if needed > left:
            raise FeaturePassStopped(f"the feature pass of '{name}' needs about {needed:.0f} s (measured by an earlier trial), "
                                     f"more than the {max(0.0, left):.0f} s left of the --time-limit; nothing cached",
                                     projected_end=time.monotonic() + needed)

    def path(self, digest: str) -> Path | None:
        """The file of an entry (``None`` without a folder)."""
        return None if self.root is None else self.root / f"{digest}{_SUFFIX}"

    def _load(self, digest: str, description: dict[str, Any]) -> dict[str, Tensors] | None:
        path = self.path(digest)
        if path is None or not path.is_file():
            return None
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as handle:
                if json.loads((handle.metadata() or {}).get("key", "null")) != description:
                    return None  # a hash collision or a foreign file: recompute and overwrite
                features: dict[str, Tensors] = {split: {} for split in SPLITS}
                for tensor_name in handle.keys():
                    split, _, field_name = tensor_name.partition("/")
                    features[split][field_name] = handle.get_tensor(tensor_name)
            os.utime(path)  # least recently *used*, not written
        except (OSError, ValueError, RuntimeError, KeyError) as error:
            logger.warning("feature cache entry %s is unreadable (%s); recomputing", path, error)
            return None
        return features

    def _save(self, digest: str, description: dict[str, Any], features: Mapping[str, Tensors]) -> None:
        """Write atomically (a concurrent reader never sees half a file); a failed write costs only the cache."""
        path = self.path(digest)
        if path is None:
            return
        flat = {f"{split}/{key}": value for split, tensors in features.items() for key, value in tensors.items()}
        size = sum(t.numel() * t.element_size() for t in flat.values())
        if size > self.max_bytes:
            logger.warning("features of '%s' (%.2f GB) exceed --cache-size-gb; kept in memory only",
                           description["encoder"], size / 1e9)
            return
        temporary = path.with_name(f".{digest}.{os.getpid()}.{threading.get_ident()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            write_safetensors(temporary, flat, metadata={"key": json.dumps(description, sort_keys=True), "version": CACHE_VERSION})
            os.replace(temporary, path)
            self.evict(keep=path)
        except OSError as error:
            logger.warning("cannot write the feature cache at %s (%s); features kept in memory only", path, error)
            temporary.unlink(missing_ok=True)

    def evict(self, keep: Path | None = None) -> list[Path]:
        """Remove least recently used entries until the folder fits ``max_bytes``; returns the removed files."""
        if self.root is None or not self.root.is_dir():
            return []
        entries = []
        for path in self.root.glob(f"*{_SUFFIX}"):
            try:
                stat = path.stat()
            except OSError:  # removed by another process meanwhile
                continue
            entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        removed = []
        for _, size, path in sorted(entries, key=lambda e: e[0]):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            path.unlink(missing_ok=True)
            total -= size
            removed.append(path)
        return removed


#: safetensors' names of the dtypes features come in
_SAFETENSORS_DTYPES = {
    torch.float64: "F64", torch.float32: "F32", torch.float16: "F16", torch.bfloat16: "BF16", torch.int64: "I64",
    torch.int32: "I32", torch.int16: "I16", torch.int8: "I8", torch.uint8: "U8", torch.bool: "BOOL",
}
#: bytes written at a time: bounds the memory a write takes, whatever the entry's size
_WRITE_CHUNK = 64 * 2**20


def write_safetensors(path: Path, tensors: Mapping[str, torch.Tensor], *, metadata: Mapping[str, str]) -> None:
    """Write ``tensors`` as a safetensors file a chunk at a time.

    ``safetensors.torch.save_file`` first copies every tensor into one bytes object, so saving
    features larger than RAM (spilled to disk, :mod:`mmbench.data.storage.spill`) would fail; this writes
    the same format (header, then each tensor's bytes; widest dtypes first so every tensor stays
    aligned for a memory-mapped read) without holding more than a chunk.
    """
    ordered = sorted(tensors.items(), key=lambda item: -item[1].element_size())
    header: dict[str, Any] = {"__metadata__": dict(metadata)}
    offset = 0
    for name, tensor in ordered:
        size = tensor.numel() * tensor.element_size()
        header[name] = {"dtype": _SAFETENSORS_DTYPES[tensor.dtype], "shape": list(tensor.shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header, separators=(",", ":")).encode()
    encoded += b" " * (-len(encoded) % 8)
    with open(path, "wb") as stream:
        stream.write(len(encoded).to_bytes(8, "little"))
        stream.write(encoded)
        for _, tensor in ordered:
            flat = tensor.contiguous().reshape(-1).view(torch.uint8) if tensor.numel() else tensor.new_empty(0, dtype=torch.uint8)
            for start in range(0, flat.numel(), _WRITE_CHUNK):
                stream.write(flat[start : start + _WRITE_CHUNK].numpy())
