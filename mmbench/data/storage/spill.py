"""Preprocessed tensors too large for host memory: written in chunks to memory-mapped files.

A modality whose tensors would push the data set past the memory budget is transformed a chunk
of rows at a time, each chunk written into ``.npy`` files that are then memory-mapped. A batch
reads only its own rows; the kernel's page cache keeps what fits and drops the rest, so a data
set larger than RAM trains (at disk speed) instead of the process being killed.

The budget is ``--memory-budget-gb`` / ``$MMBENCH_MEMORY_BUDGET_GB``, by default half of the
memory available when the data is prepared; 0 streams every modality. Files go to a folder of
this process under ``$MMBENCH_SPILL_DIR`` (default: ``<user cache dir>/mmbench/spill``, on disk
where ``/tmp`` may be RAM), removed at exit; a folder left by a killed process is removed by the
next process of the same host that spills.
"""

from __future__ import annotations

import atexit
import math
import mmap
import os
import shutil
import socket
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from mmbench.data.storage.media_cache import DECODE_ROWS
from mmbench.errors import ConfigError, DataError

if TYPE_CHECKING:
    import datasets

    from mmbench.data.preprocess.base import Preprocessor, Tensors

BUDGET_VARIABLE = "MMBENCH_MEMORY_BUDGET_GB"
SPILL_VARIABLE = "MMBENCH_SPILL_DIR"
#: Share of the available memory the preprocessed tensors may take by default.
DEFAULT_SHARE = 0.5
#: Rows transformed at once while spilling: bounds the memory a transform needs. The same
#: chunks as media decoding, so the chunks a preprocessor's fit decoded are found in the disk cache.
CHUNK_ROWS = DECODE_ROWS
#: Rows transformed to estimate a modality's size before deciding where its tensors live.
SAMPLE_ROWS = 32
#: numpy has no dtype for these: stored as same-width integers and viewed back.
_BIT_CASTS = {torch.bfloat16: torch.int16}


def available_memory() -> int:
    """Bytes this process can still use without swapping or being killed: the kernel's
    ``MemAvailable``, or less where a cgroup memory limit (a container, a batch job) leaves less."""
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except OSError:
        pass
    if available is None:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    room = cgroup_room()
    return available if room is None else min(available, room)


def cgroup_room(proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes left under this process's cgroup memory limit (v2 ``memory.max`` or v1
    ``memory.limit_in_bytes``), counting inactive page cache as free; ``None`` without a limit."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        if controllers == "":  # v2, mounted at the root or (hybrid) under unified/
            layouts = [(folder, "memory.max", "memory.current", "inactive_file") for folder in (root / relative, root / "unified" / relative)]
        elif "memory" in controllers.split(","):
            layouts = [(root / "memory" / relative, "memory.limit_in_bytes", "memory.usage_in_bytes", "total_inactive_file")]
        else:
            continue
        for folder, limit_file, usage_file, inactive_key in layouts:
            try:
                limit_text = (folder / limit_file).read_text().strip()
                usage = int((folder / usage_file).read_text())
            except (OSError, ValueError):
                continue
            if limit_text == "max" or int(limit_text) >= 2**60:  # no limit
                continue
            return max(0, int(limit_text) - usage + _stat(folder / "memory.stat", inactive_key))
    return None


def _stat(path: Path, key: str) -> int:
    try:
        for line in path.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == key:
                return int(value)
    except (OSError, ValueError):
        pass
    return 0


def memory_budget(gigabytes: float | None = None) -> int:
    """The bytes of preprocessed tensors kept in memory: ``gigabytes``, else ``$MMBENCH_MEMORY_BUDGET_GB``,
    else :data:`DEFAULT_SHARE` of the available memory.

    Raises:
        ConfigError: a negative or non-numeric budget.
    """
    source = "--memory-budget-gb"
    if gigabytes is None and os.environ.get(BUDGET_VARIABLE, "").strip():
        source, text = BUDGET_VARIABLE, os.environ[BUDGET_VARIABLE]
        try:
            gigabytes = float(text)
        except ValueError:
            raise ConfigError(f"{BUDGET_VARIABLE}={text!r}: expected a number of gigabytes") from None
    if gigabytes is None:
        return int(DEFAULT_SHARE * available_memory())
    if gigabytes < 0:
        raise ConfigError(f"{source} must be 0 (stream everything) or positive, got {gigabytes}")
    return int(gigabytes * 1e9)


def bytes_per_row(preprocessor: Preprocessor, sample: datasets.Dataset) -> float:
    """Bytes one row takes once ``preprocessor`` (already fitted) transformed it, from a few rows."""
    rows = sample.select(range(min(SAMPLE_ROWS, sample.num_rows)))
    tensors = preprocessor.transform(rows)
    return sum(v.numel() * v.element_size() for v in tensors.values()) / max(1, rows.num_rows)


class SpillFolder:
    """This process's folder of memory-mapped tensors, created on first use and removed at exit.

    Args:
        root: parent folder (default ``$MMBENCH_SPILL_DIR`` or ``<user cache dir>/mmbench/spill``).
    """

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or default_spill_root()
        self._path: Path | None = None

    @property
    def path(self) -> Path:
        """The folder (created, and stale folders of dead processes removed, on first access)."""
        if self._path is None:
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                remove_stale(self.root)
                self._path = Path(tempfile.mkdtemp(prefix=f"{os.getpid()}@{socket.gethostname()}+", dir=self.root))
            except OSError as error:
                raise DataError(f"cannot create the spill folder under {self.root} ({error}); set {SPILL_VARIABLE}") from None
            atexit.register(shutil.rmtree, self._path, ignore_errors=True)
        return self._path

    def transform(self, preprocessor: Preprocessor, split: datasets.Dataset, name: str) -> Tensors:
        """``preprocessor.transform(split)`` a chunk of rows at a time, into memory-mapped tensors.

        Raises:
            DataError: chunks came out with different keys or row shapes (the preprocessor pads
                per call instead of to a length fixed by ``fit``), or the disk is full.
        """
        tensors: Tensors = {}
        shapes: dict[str, tuple[int, ...]] = {}
        for start in range(0, split.num_rows, CHUNK_ROWS):
            stop = min(split.num_rows, start + CHUNK_ROWS)
            chunk = preprocessor.transform(split.select(range(start, stop)))
            if not tensors:
                shapes = {key: tuple(value.shape[1:]) for key, value in chunk.items()}
                tensors = {key: self.empty(f"{name}-{key}", (split.num_rows, *shapes[key]), value.dtype) for key, value in chunk.items()}
            found = {key: tuple(value.shape[1:]) for key, value in chunk.items()}
            if found != shapes:
                raise DataError(
                    f"preprocessor {type(preprocessor).__name__} of '{name}': rows {start}-{stop - 1} came out as "
                    f"{found}, the first rows as {shapes}; to stream, every row must have the shape fitted on train"
                )
            for key, value in chunk.items():
                tensors[key][start:stop] = value
        return tensors

    def empty(self, name: str, shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
        """An uninitialised tensor backed by the file ``<name>.npy`` of this folder.

        Raises:
            DataError: the file cannot be created (disk full, no permission).
        """
        path = self.path / f"{_safe(name)}.npy"
        stored = _BIT_CASTS.get(dtype, dtype)
        numpy_dtype = torch.empty(0, dtype=stored).numpy().dtype
        try:
            offset = np.lib.format.open_memmap(path, mode="w+", dtype=numpy_dtype, shape=shape).offset  # header + size
            with open(path, "r+b") as stream:
                mapping = mmap.mmap(stream.fileno(), 0)
        except OSError as error:
            raise DataError(f"cannot write spilled tensors to {path} ({error}); free disk space or set {SPILL_VARIABLE}") from None
        if hasattr(mapping, "madvise"):
            # Batches read rows in random order: without this hint the kernel reads ahead around
            # every row and, short of memory, evicts rows it is about to need (15x slower gathers
            # measured under a memory limit of half the file).
            mapping.madvise(mmap.MADV_RANDOM)
        array = np.frombuffer(mapping, dtype=numpy_dtype, count=math.prod(shape), offset=offset).reshape(shape)
        tensor = torch.from_numpy(array)
        tensor = tensor.view(dtype) if stored is not dtype else tensor
        tensor._mmbench_spilled = True  # type: ignore[attr-defined]  # read by is_spilled
        return tensor


def default_spill_root() -> Path:
    """``$MMBENCH_SPILL_DIR`` or ``<user cache dir>/mmbench/spill``."""
    value = os.environ.get(SPILL_VARIABLE, "").strip()
    if value:
        return Path(value).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("mmbench")) / "spill"


def remove_stale(root: Path) -> list[Path]:
    """Remove the spill folders (``<pid>@<host>+<random>``) of this host's processes that are gone.

    Folders of other hosts are left alone: a shared ``$MMBENCH_SPILL_DIR`` (a cluster's scratch
    space) holds live folders whose process numbers mean nothing here.
    """
    removed = []
    for folder in root.iterdir():
        pid, _, host = folder.name.rpartition("+")[0].partition("@")
        if folder.is_dir() and host == socket.gethostname() and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder)
    return removed


def is_spilled(tensor: torch.Tensor) -> bool:
    """True for a tensor backed by a spill file (not resident memory)."""
    return getattr(tensor, "_mmbench_spilled", False)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        pass
    return True


def _safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
