"""Batches read ahead in a background thread, so reading spilled rows from disk overlaps training.

A thread rather than DataLoader worker processes: a batch of spilled rows is one gather from
memory-mapped files, which torch runs without holding the GIL; the page cache is shared by
threads anyway; and forking a process that runs Optuna's and MLflow's threads is unsafe.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

#: Batches prepared ahead of the one being trained on.
DEPTH = 2
_END = object()


def read_ahead(items: Iterable[T], depth: int = DEPTH) -> Iterator[T]:
    """Yield ``items`` in order while a background thread produces up to ``depth`` of them ahead.

    An exception in the producer is raised here, at the item where it happened; a consumer that
    stops early (early stopping, pruning) stops the producer too.
    """
    ready: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(item: object, error: BaseException | None = None) -> bool:
        while not stop.is_set():
            try:
                ready.put((item, error), timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put(item):
                    return
        except BaseException as error:  # noqa: BLE001 - re-raised in the consumer
            put(_END, error)
            return
        put(_END)

    thread = threading.Thread(target=produce, name="mmbench-read-ahead", daemon=True)
    thread.start()
    try:
        while True:
            item, error = ready.get()
            if error is not None:
                raise error
            if item is _END:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
