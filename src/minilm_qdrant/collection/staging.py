"""Overlapped ingest stages: a worker thread runs one stage ahead of the consumer.

`staged(items, fn)` yields ``(item, fn(item))`` in order while ``fn`` already works on the
next items (bounded queue: backpressure, so memory stays flat however long the input is).
onnxruntime and torch release the GIL, so embedding batch i+1 overlaps upserting batch i.
Exceptions raised by ``fn`` (or by the input iterator) reach the consumer at their place.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_DONE = object()


class _Failure(Generic[T]):
    def __init__(self, item: T | None, exc: BaseException) -> None:
        self.item, self.exc = item, exc


class StageError(Exception):
    """Raised by `staged` for a failed item: ``item`` is the input, the cause is chained."""

    def __init__(self, item: object, exc: BaseException) -> None:
        super().__init__(str(exc))
        self.item = item


def staged(
    items: Iterable[T], fn: Callable[[T], R], depth: int = 2
) -> Generator[tuple[T, R], None, None]:
    """``(item, fn(item))`` for each item, in order, computed up to ``depth`` items ahead."""
    out: queue.Queue[object] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(value: object) -> bool:
        while not stop.is_set():
            try:
                out.put(value, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def work() -> None:
        item: T | None = None
        try:
            for current in items:
                item = current
                if not put((item, fn(item))):
                    return
                item = None  # a failure in the input iterator belongs to no batch
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            put(_Failure(item, exc))
            return
        put(_DONE)

    worker = threading.Thread(target=work, name="minilm-qdrant-stage", daemon=True)
    worker.start()
    try:
        while True:
            try:  # in short waits: a signal that the kernel handed to the worker thread is
                value = out.get(timeout=0.1)  # run here (only the main thread runs handlers)
            except queue.Empty:
                continue
            if value is _DONE:
                return
            if isinstance(value, _Failure):
                raise StageError(value.item, value.exc) from value.exc
            yield value  # type: ignore[misc]
    finally:
        stop.set()
        worker.join(timeout=5)
