"""`push`: copy a collection from the embedded store to a Qdrant server or cluster.

Ids, dense, window and BM25 sparse vectors, payloads, payload indexes and the fingerprint are
copied as stored (nothing is re-embedded or re-encoded; a quantized source makes its new target
quantized the same way); points stream in count- and byte-bounded batches, each retried like an
ingest batch. Point ids are kept, so a rerun after an
interruption completes the copy without duplicates. It ends comparing counts. A new target
stores window vectors as ``options.window_datatype`` says (float16 unless chosen).
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from qdrant_client import models

from minilm_qdrant import retry
from minilm_qdrant.collection.batching import (
    BATCH_TARGET_BYTES,
    MAX_BATCH_BYTES,
    bounded,
    request_bytes,
)
from minilm_qdrant.collection.options import CollectionOptions
from minilm_qdrant.collection.parts import create_collection
from minilm_qdrant.engines import Engine, Sparse, StoredPoint
from minilm_qdrant.engines.client import connect
from minilm_qdrant.engines.diskspace import payload_bytes
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import CollectionMismatch, CollectionNotFound, InputError
from minilm_qdrant.fingerprint import FINGERPRINT_KEY, Fingerprint


@dataclass
class PushReport:
    """What a push did; ``ok`` when the target holds at least every source point."""

    source: str
    target: str
    copied: int = 0
    batches: int = 0
    retries: int = 0
    created: bool = False
    indexes: list[str] = field(default_factory=list)
    """Payload fields indexed on the target as on the source (before the points arrive)."""
    source_count: int = 0
    target_count: int = 0
    seconds: float = 0.0
    quantization: str | None = None
    """The source's quantization (its fingerprint's), which a new target is made with."""

    @property
    def ok(self) -> bool:
        return self.target_count >= self.source_count


def push(
    *,
    path: str,
    collection: str,
    url: str | None = None,
    api_key: str | None = None,
    to_path: str | None = None,
    to_collection: str | None = None,
    options: CollectionOptions | None = None,
    batch_size: int = 256,
    max_batch_bytes: int = MAX_BATCH_BYTES,
    retry_policy: retry.RetryPolicy | None = None,
    allow_insecure: bool = False,
    on_progress: Callable[[int], None] | None = None,
) -> PushReport:
    """Copy ``collection`` from the store at ``path`` to ``url`` (or a local store ``to_path``).

    The target collection (``to_collection``, default the same name) is created with the
    source's size, distance and fingerprint (its quantization too) and ``options`` (shards,
    replicas...), or, when it exists, validated against them: a target made for another model raises
    `CollectionMismatch` before anything is written.
    """
    if (url is None) == (to_path is None):
        raise InputError("give the target as either a url or a to_path (one of them)")
    if batch_size < 1 or max_batch_bytes < 1:
        raise ValueError("batch_size and max_batch_bytes must be positive")
    policy = retry_policy or retry.RetryPolicy()
    target_name = to_collection or collection
    where = url or to_path or ""
    report = PushReport(source=f"{path}:{collection}", target=f"{where}:{target_name}")
    start = time.monotonic()

    def call(fn: Callable[[], Any], what: str) -> Any:
        def counted(_: BaseException) -> None:
            report.retries += 1

        return retry.call(fn, policy, what=what, on_retry=counted)

    source = Location(path=path).open(create=False)
    try:
        info = source.info(collection)
        if info is None:
            raise CollectionNotFound(f"Collection {collection!r} does not exist at {path}.")
        stored = Fingerprint.read(info, collection, path)  # only collections made by us
        fingerprint = info.metadata[FINGERPRINT_KEY]  # travels as it is
        report.quantization = stored.quantization
        there = Location(url=url, api_key=api_key, allow_insecure=allow_insecure) if url \
            else Location(client=connect(path=to_path))  # a local path: qdrant-client's mode
        target: Engine = there.open()
        try:
            existing = call(lambda: target.info(target_name), f"reading {target_name!r}")
            sparse = stored.sparse is not None
            if existing is None:  # as the source was made; a graph per tenant there too
                create_collection(target, target_name, info.size, info.distance, stored,
                                  options or CollectionOptions(), call,
                                  metadata={FINGERPRINT_KEY: fingerprint})
                report.created = True
            else:
                theirs = existing.metadata.get(FINGERPRINT_KEY)
                if (existing.size, existing.distance, theirs, existing.sparse,
                        existing.windows) != (info.size, info.distance, fingerprint, info.sparse,
                                              info.windows):
                    raise CollectionMismatch(
                        f"Target collection {target_name!r} at {where} holds size "
                        f"{existing.size}, distance {existing.distance}, fingerprint {theirs}; "
                        f"the source holds size {info.size}, distance {info.distance}, "
                        f"fingerprint {fingerprint}. Push to another --to-collection."
                    )
            for key, kind in source.payload_indexes(collection).items():
                call(lambda: target.create_payload_index(target_name, key, kind),  # noqa: B023
                     f"indexing {key} of {target_name!r}")
                report.indexes.append(key)
            points = (p for page in source.scroll(collection, batch_size) for p in page)
            dim = info.size
            for batch in bounded(points, lambda p: _bytes(p, dim), batch_size,
                                 min(max_batch_bytes, BATCH_TARGET_BYTES)):
                ids = [p.id for p in batch]
                vectors = _stack(batch)
                payloads = [p.payload for p in batch]
                vecs = _sparse(batch, sparse)
                windows = _windows(batch, collection) if info.windows else None
                call(functools.partial(target.upsert, target_name, ids, vectors, payloads,
                                       vecs, windows),
                     f"writing {len(batch)} points to {target_name!r}")
                report.copied += len(batch)
                report.batches += 1
                if on_progress:
                    on_progress(len(batch))
            report.source_count = source.count(collection)
            report.target_count = call(lambda: target.count(target_name), "counting the target")
        finally:
            target.close()
    finally:
        source.close()
    report.seconds = time.monotonic() - start
    return report


def _bytes(point: StoredPoint, dim: int) -> int:
    terms = len(point.sparse.indices) if point.sparse is not None else 0
    windows = len(point.windows) if point.windows is not None else 0
    return request_bytes(payload_bytes(point.payload), dim * (1 + windows), terms)


def _windows(batch: list[StoredPoint], collection: str) -> list[np.ndarray]:
    found = [p.windows for p in batch if p.windows is not None]
    if len(found) != len(batch):
        raise InputError(f"a point of {collection!r} has no window vectors: the source is "
                         "damaged; re-index it")
    return found


def _sparse(batch: list[StoredPoint], sparse: bool) -> list[Sparse] | None:
    """The batch's BM25 vectors (an empty one for a point stored without: a text of stopwords
    only), or None for a dense-only collection."""
    if not sparse:
        return None
    return [p.sparse if p.sparse is not None else _EMPTY for p in batch]


_EMPTY = models.SparseVector(indices=[], values=[])


def _stack(batch: list[StoredPoint]) -> Any:
    return np.stack([np.asarray(p.vector, dtype=np.float32) for p in batch])
