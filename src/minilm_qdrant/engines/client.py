"""The QdrantClient engine: a Qdrant server or cluster (url), or qdrant-client's local mode."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from qdrant_client import QdrantClient, models

from minilm_qdrant.engines import CollectionInfo, CollectionOptions, Distance, StoredPoint
from minilm_qdrant.errors import InputError, StoreInUse

_TO_QDRANT = {"dot": models.Distance.DOT, "cosine": models.Distance.COSINE,
              "euclid": models.Distance.EUCLID}
_FROM_QDRANT: dict[models.Distance, Distance] = {v: k for k, v in _TO_QDRANT.items()}  # type: ignore[misc]


def connect(
    *,
    url: str | None = None,
    path: str | None = None,
    api_key: str | None = None,
    allow_insecure: bool = False,
    timeout: float = 30.0,
    **client_kwargs: Any,
) -> QdrantClient:
    """The one place that builds a QdrantClient from url / path / api_key.

    An API key over plain http to a non-loopback host is refused unless ``allow_insecure``:
    it would cross the network in clear text.
    """
    if url:
        if api_key and not allow_insecure and _insecure(url):
            raise InputError(
                f"Refusing to send an API key over plain http to {urlsplit(url).hostname}: use "
                "https, or pass allow_insecure=True (--allow-insecure) if the network is trusted."
            )
        return QdrantClient(url=url, api_key=api_key, timeout=int(timeout), **client_kwargs)
    location = path or ":memory:"
    try:
        if location == ":memory:":
            return QdrantClient(location=":memory:", **client_kwargs)
        return QdrantClient(path=location, **client_kwargs)
    except RuntimeError as exc:
        if "already accessed" in str(exc):
            raise StoreInUse(
                f"The embedded store at {location} is in use by another process; close it "
                "there first (the lock is released when that process ends)."
            ) from None
        raise


def _insecure(url: str) -> bool:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme == "https":
        return False
    host = parts.hostname or ""
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


class ClientEngine:
    """Drives any QdrantClient; every write waits for the acknowledgement (``wait=True``)."""

    def __init__(self, client: QdrantClient, *, where: str = "qdrant") -> None:
        self.client = client
        self.where = where

    def __repr__(self) -> str:
        return f"ClientEngine({self.where!r})"

    def info(self, name: str) -> CollectionInfo | None:
        if not self.client.collection_exists(name):
            return None
        config = self.client.get_collection(name).config
        params = config.params.vectors
        if not isinstance(params, models.VectorParams):
            raise InputError(
                f"Collection {name!r} uses named vectors {sorted(params or {})}; this package "
                "works with a single unnamed vector per point."
            )
        return CollectionInfo(
            size=params.size, distance=_FROM_QDRANT[params.distance],
            metadata=dict(config.metadata or {}),
        )

    def create(
        self, name: str, size: int, distance: Distance, metadata: dict[str, Any],
        options: CollectionOptions,
    ) -> None:
        hnsw = None
        if (options.hnsw_m, options.hnsw_ef_construct, options.full_scan_threshold) != (None,) * 3:
            hnsw = models.HnswConfigDiff(
                m=options.hnsw_m, ef_construct=options.hnsw_ef_construct,
                full_scan_threshold=options.full_scan_threshold,
            )
        quantization = None
        if options.quantization == "int8":
            quantization = models.ScalarQuantization(
                scalar=models.ScalarQuantizationConfig(type=models.ScalarType.INT8, always_ram=True)
            )
        self.client.create_collection(
            name,
            vectors_config=models.VectorParams(
                size=size, distance=_TO_QDRANT[distance], on_disk=options.on_disk
            ),
            on_disk_payload=options.on_disk_payload,
            hnsw_config=hnsw,
            quantization_config=quantization,
            shard_number=options.shard_number,
            replication_factor=options.replication_factor,
            write_consistency_factor=options.write_consistency_factor,
            metadata=metadata,
        )

    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]]
    ) -> None:
        self.client.upsert(
            name,
            points=models.Batch(ids=list(ids), vectors=vectors.tolist(), payloads=payloads),
            wait=True,
        )

    def search(
        self, name: str, vector: np.ndarray, k: int, query_filter: Any | None = None,
        exact: bool = False, hnsw_ef: int | None = None,
    ) -> list[StoredPoint]:
        params = models.SearchParams(exact=exact, hnsw_ef=hnsw_ef) if exact or hnsw_ef else None
        result = self.client.query_points(
            name, query=vector.tolist(), limit=k, query_filter=query_filter,
            with_payload=True, search_params=params,
        )
        return [StoredPoint(id=str(p.id), payload=p.payload or {}, score=p.score)
                for p in result.points]

    def count(self, name: str) -> int:
        return self.client.count(name, exact=True).count

    def delete(self, name: str, ids: list[str]) -> None:
        self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def create_payload_index(self, name: str, field: str, kind: str) -> None:
        schema = models.PayloadSchemaType(kind)
        self.client.create_payload_index(name, field, field_schema=schema, wait=True)

    def payload_indexes(self, name: str) -> dict[str, str]:
        schema = self.client.get_collection(name).payload_schema or {}
        return {k: str(getattr(v.data_type, "value", v.data_type)) for k, v in schema.items()}

    def optimize(self, name: str) -> None:
        """A server indexes in the background; local mode has no index to build."""

    def scroll(
        self, name: str, batch: int, with_vectors: bool = True
    ) -> Iterator[list[StoredPoint]]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                name, limit=batch, offset=offset, with_payload=True, with_vectors=with_vectors
            )
            yield [
                StoredPoint(
                    id=str(p.id), payload=p.payload or {},
                    vector=np.asarray(p.vector, dtype=np.float32) if with_vectors else None,
                )
                for p in points
            ]
            if offset is None:
                return

    def close(self) -> None:
        self.client.close()
