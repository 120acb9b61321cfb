"""What a model costs: parameters, training time per epoch, inference latency, peak memory.

Recorded for every finished trial (metrics ``n_parameters`` and ``n_parameters_total``,
``train_epoch_s``, ``latency_ms_b1``, ``latency_ms_batched``), so the leaderboard and the report
can weigh accuracy against cost, and :func:`measure_latency` can be the second objective of
``--objectives metric,latency``. Peak memory (``peak_rss_mb``, ``peak_gpu_mb`` on CUDA) is
measured around each trial's training by :class:`mmbench.train.memory.PeakMemory`.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from mmbench.data.prepared import SplitTensors
    from mmbench.train.model import MultimodalModel

#: rows timed one at a time for the batch-1 latency
N_SINGLE = 16
#: batch size of the batched latency
BATCH_SIZE = 256
#: rows timed at most for the batched latency
MAX_ROWS = 2048

_shared = threading.local()  # .memo: this thread's group's measurements (shared_latency)
_memo_lock = threading.Lock()


@contextlib.contextmanager
def shared_latency(memo: dict) -> Iterator[None]:
    """In this thread, reuse the latency measured for a model of the same structure on the same rows.

    The members of a batch (``--batch-trials``) have identical modules and shapes, so the same
    inference cost: timing each of them again measures the same arithmetic. Threads that pass the
    same ``memo`` share it; each member still records the metrics.
    """
    _shared.memo = memo
    try:
        yield
    finally:
        _shared.memo = None


def _latency(model: MultimodalModel, split: SplitTensors, *, batch_size: int, max_rows: int) -> float:
    """:func:`measure_latency`, or the measurement of the same structure under :func:`shared_latency`."""
    memo = getattr(_shared, "memo", None)
    if memo is None:
        return measure_latency(model, split, batch_size=batch_size, max_rows=max_rows)
    shapes = tuple((name, tuple(p.shape)) for name, p in model.named_parameters())
    rows = tuple((value.data_ptr(), tuple(value.shape)) for fields in split.inputs.values() for value in fields.values())
    key = (repr(model), shapes, rows, batch_size, max_rows, str(next(model.parameters(), torch.empty(0)).device))
    with _memo_lock:  # the first member times it, the others wait for its figure
        if key not in memo:
            memo[key] = measure_latency(model, split, batch_size=batch_size, max_rows=max_rows)
        return memo[key]


def _synchronize(model: torch.nn.Module) -> None:
    parameter = next(model.parameters(), None)
    if parameter is not None and parameter.device.type == "cuda":
        torch.cuda.synchronize(parameter.device)


def measure_latency(model: MultimodalModel, split: SplitTensors, *, batch_size: int = BATCH_SIZE,
                    max_rows: int = MAX_ROWS) -> float:
    """Inference milliseconds per example, in batches of ``batch_size``, after one warm-up pass.

    Args:
        model: the trained model (timed on its own device).
        split: rows to predict (at most ``max_rows`` are used, so large splits stay quick).
        batch_size: rows per forward pass; 1 gives the per-request latency.
        max_rows: cap on the rows timed.
    """
    from mmbench.train.loop import predict_logits

    rows = split if len(split) <= max_rows else _head(split, max_rows)
    predict_logits(model, _head(rows, min(len(rows), batch_size)), batch_size=batch_size)
    _synchronize(model)
    started = time.perf_counter()
    predict_logits(model, rows, batch_size=batch_size)
    _synchronize(model)
    return (time.perf_counter() - started) * 1000 / max(1, len(rows))


def _head(split: SplitTensors, n: int) -> SplitTensors:
    from mmbench.data.prepared import SplitTensors

    index = torch.arange(n, device=split.labels.device)
    inputs, labels = split.select(index)
    return SplitTensors(inputs, labels)


def efficiency_metrics(model: MultimodalModel, result: Any, split: SplitTensors) -> dict[str, float]:
    """Every efficiency metric of a trained trial.

    Args:
        model: the trained model.
        result: its :class:`~mmbench.train.loop.FitResult` (epoch times).
        split: rows to time inference on (the validation split).
    """
    from mmbench.train.model import count_parameters

    metrics: dict[str, float] = {"n_parameters_total": float(count_parameters(model, trainable_only=False))}
    epochs = [report.seconds for report in getattr(result, "history", [])]
    if epochs:
        metrics["train_epoch_s"] = statistics.fmean(epochs)
    if len(split):
        metrics["latency_ms_b1"] = _latency(model, split, batch_size=1, max_rows=N_SINGLE)
        metrics["latency_ms_batched"] = _latency(model, split, batch_size=BATCH_SIZE, max_rows=MAX_ROWS)
    return metrics
