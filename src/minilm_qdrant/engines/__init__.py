"""Engines store and search vectors; the collection manager drives them through `Engine`.

One file per engine. Engines know nothing of embedders or models: they see ids, float32
vectors, JSON payloads and the collection's metadata (which carries the fingerprint).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

Distance = Literal["dot", "cosine", "euclid"]


@dataclass(frozen=True)
class CollectionOptions:
    """Pass-through settings for scale; None means the engine's default."""

    on_disk: bool | None = None
    """Keep vectors on disk (memory-mapped) instead of in RAM."""
    on_disk_payload: bool | None = None
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    full_scan_threshold: int | None = None
    """KB of vectors under which a segment is searched by full scan instead of HNSW."""
    quantization: Literal["int8"] | None = None
    """Scalar int8 quantisation of the stored vectors (originals kept for rescoring)."""
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None


@dataclass(frozen=True)
class CollectionInfo:
    size: int
    distance: Distance
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredPoint:
    id: str
    payload: dict[str, Any]
    score: float | None = None
    vector: np.ndarray | None = None


class Engine(Protocol):
    """The small contract every engine keeps (same ids, same scores, same errors)."""

    def info(self, name: str) -> CollectionInfo | None:
        """The collection's vector size, distance and metadata; None when it does not exist."""
        ...

    def create(
        self, name: str, size: int, distance: Distance, metadata: dict[str, Any],
        options: CollectionOptions,
    ) -> None: ...

    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None:
        """Write points and return once they are acknowledged (durable)."""
        ...

    def search(
        self, name: str, vector: np.ndarray, k: int, query_filter: Any | None = None,
        exact: bool = False, hnsw_ef: int | None = None,
    ) -> list[StoredPoint]:
        """The k nearest points; ``query_filter`` is a qdrant_client.models.Filter."""
        ...

    def count(self, name: str) -> int: ...

    def delete(self, name: str, ids: list[str]) -> None: ...

    def create_payload_index(self, name: str, field: str, kind: str) -> None:
        """Index a payload field ("keyword", "integer", "float", "bool", "text", ...)."""
        ...

    def payload_indexes(self, name: str) -> dict[str, str]:
        """Indexed payload fields and their kinds (``{"metadata.topic": "keyword"}``)."""
        ...

    def optimize(self, name: str) -> None:
        """After a bulk ingest: build the HNSW index where the engine does not on its own."""
        ...

    def scroll(
        self, name: str, batch: int, with_vectors: bool = True
    ) -> Iterator[list[StoredPoint]]: ...

    def close(self) -> None: ...
