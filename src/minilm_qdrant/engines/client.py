"""The QdrantClient engine: a Qdrant server or cluster (url), or qdrant-client's local mode."""

from __future__ import annotations

import ipaddress
import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any
from urllib.parse import urlsplit

import numpy as np
from qdrant_client import QdrantClient, models

from minilm_qdrant.documents import Distance
from minilm_qdrant.engines import (
    BINARY_ENCODING,
    BINARY_QUERY_ENCODING,
    QUANTILE,
    SPARSE_NAME,
    WINDOWS_NAME,
    CollectionInfo,
    ScaleOptions,
    SearchRequest,
    Sparse,
    StoredPoint,
)
from minilm_qdrant.errors import InputError, StoreInUse

log = logging.getLogger(__name__)
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
        from qdrant_client.local.qdrant_local import QdrantLocal

        self.in_process = isinstance(getattr(client, "_client", None), QdrantLocal)

    def __repr__(self) -> str:
        return f"ClientEngine({self.where!r})"

    def info(self, name: str) -> CollectionInfo | None:
        if not self.client.collection_exists(name):
            return None
        config = self.client.get_collection(name).config
        params: Any = config.params.vectors
        named = params if isinstance(params, dict) else {"": params}
        if not isinstance(named.get(""), models.VectorParams) or set(named) - {"", WINDOWS_NAME}:
            raise InputError(
                f"Collection {name!r} uses named dense vectors {sorted(named)}; this package "
                "works with one unnamed dense vector per point (with a multivector "
                f"{WINDOWS_NAME!r} and a sparse 'bm25')."
            )
        return CollectionInfo(
            size=named[""].size, distance=_FROM_QDRANT[named[""].distance],
            metadata=dict(config.metadata or {}),
            sparse=SPARSE_NAME in (config.params.sparse_vectors or {}),
            windows=WINDOWS_NAME in named,
        )

    def create(
        self, name: str, size: int, distance: Distance, metadata: dict[str, Any],
        options: ScaleOptions, *, sparse: bool, windows: bool,
    ) -> None:
        hnsw = None
        if (options.hnsw_m, options.hnsw_ef_construct, options.full_scan_threshold,
                options.hnsw_payload_m) != (None,) * 4:
            hnsw = models.HnswConfigDiff(
                m=options.hnsw_m, ef_construct=options.hnsw_ef_construct,
                full_scan_threshold=options.full_scan_threshold, payload_m=options.hnsw_payload_m,
            )
        if options.quantization is not None and self.in_process:
            log.warning(
                "qdrant-client local mode has no quantization: collection %r keeps its vectors "
                "as they are and searches them exactly; it records %s, which a push to a "
                "server (or the embedded store) makes there.", name, options.quantization)
        dense = models.VectorParams(size=size, distance=_TO_QDRANT[distance],
                                    on_disk=options.vectors_on_disk,
                                    quantization_config=_quantization(options.quantization))
        vectors: Any = dense
        if windows:  # ranked by MaxSim, never searched by HNSW (m=0)
            vectors = {"": dense, WINDOWS_NAME: models.VectorParams(
                size=size, distance=_TO_QDRANT[distance], on_disk=options.vectors_on_disk,
                datatype=models.Datatype.FLOAT16 if options.window_datatype == "float16"
                else None,
                multivector_config=models.MultiVectorConfig(
                    comparator=models.MultiVectorComparator.MAX_SIM),
                hnsw_config=models.HnswConfigDiff(m=0))}
        self.client.create_collection(
            name,
            vectors_config=vectors,
            sparse_vectors_config=None if not sparse else {
                SPARSE_NAME: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            on_disk_payload=options.on_disk_payload,
            hnsw_config=hnsw,
            shard_number=options.shard_number,
            replication_factor=options.replication_factor,
            write_consistency_factor=options.write_consistency_factor,
            metadata=metadata,
        )

    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
        sparse: list[Sparse] | None = None, windows: list[np.ndarray] | None = None,
    ) -> None:
        rows: Any = np.asarray(vectors, dtype=np.float32).tolist()
        if sparse is not None or windows is not None:
            named: dict[str, Any] = {"": rows}
            if sparse is not None:
                named[SPARSE_NAME] = [_sparse(v) for v in sparse]
            if windows is not None:
                named[WINDOWS_NAME] = [np.asarray(w, dtype=np.float32).tolist() for w in windows]
            for extra, values in named.items():
                if len(values) != len(rows):
                    raise InputError(f"{len(rows)} dense but {len(values)} {extra} vectors")
            rows = named
        self.client.upsert(
            name, points=models.Batch(ids=list(ids), vectors=rows, payloads=payloads), wait=True,
        )

    def search(self, name: str, request: SearchRequest) -> list[StoredPoint]:
        if self.in_process:  # local mode searches exactly: no quantization to rescore
            request = replace(request, quantization=None)
        result = self.client.query_points(
            name, **_query(request), with_payload=True, with_vectors=False)
        return [StoredPoint.from_record(p, with_vectors=False) for p in result.points]

    def add_sparse(self, name: str) -> None:
        if SPARSE_NAME in (self.client.get_collection(name).config.params.sparse_vectors or {}):
            return
        raise InputError(
            f"Collection {name!r} at {self.where} cannot be given sparse vectors in place (Qdrant "
            "adds no vector to an existing collection here); index the documents into a new "
            "collection, which gets them by default."
        )

    def upsert_sparse(self, name: str, ids: list[str], sparse: list[Sparse]) -> None:
        self.client.update_vectors(name, points=[
            models.PointVectors(id=i, vector={SPARSE_NAME: _sparse(s)})
            for i, s in zip(ids, sparse, strict=True)
        ], wait=True)

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        self.client.update_collection(name, metadata=metadata)

    def retrieve(self, name: str, ids: list[str], windows: bool = False) -> list[StoredPoint]:
        records = self.client.retrieve(name, list(ids), with_payload=True,
                                       with_vectors=[WINDOWS_NAME] if windows else False)
        return [StoredPoint.from_record(r, with_vectors=False) for r in records]

    def count(self, name: str, query_filter: Any | None = None) -> int:
        return self.client.count(name, count_filter=query_filter, exact=True).count

    def delete(self, name: str, ids: list[str]) -> None:
        self.client.delete(name, points_selector=models.PointIdsList(points=list(ids)), wait=True)

    def delete_by_filter(self, name: str, query_filter: Any) -> None:
        if query_filter is None:
            raise InputError("delete_by_filter needs a filter")
        self.client.delete(name, points_selector=models.FilterSelector(filter=query_filter),
                           wait=True)

    def set_payload(
        self, name: str, values: dict[str, Any], key: str | None, *,
        ids: list[str] | None = None, query_filter: Any | None = None,
    ) -> None:
        selector: Any = list(ids) if ids is not None else query_filter
        if selector is None:
            raise InputError("set_payload needs ids or a filter")
        self.client.set_payload(name, values, points=selector, key=key, wait=True)

    def create_payload_index(self, name: str, field: str, kind: str) -> None:
        schema: Any = models.KeywordIndexParams(type=models.KeywordIndexType.KEYWORD,
                                                is_tenant=True) \
            if kind == "tenant" else models.PayloadSchemaType(kind)
        self.client.create_payload_index(name, field, field_schema=schema, wait=True)

    def payload_indexes(self, name: str) -> dict[str, str]:
        schema = self.client.get_collection(name).payload_schema or {}
        return {k: "tenant" if getattr(v.params, "is_tenant", None)
                else str(getattr(v.data_type, "value", v.data_type)) for k, v in schema.items()}

    def optimize(self, name: str) -> None:
        """A server indexes in the background; local mode has no index to build."""

    def scroll(
        self, name: str, batch: int, with_vectors: bool = True, query_filter: Any | None = None
    ) -> Iterator[list[StoredPoint]]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                name, scroll_filter=query_filter, limit=batch, offset=offset, with_payload=True,
                with_vectors=with_vectors,
            )
            yield [StoredPoint.from_record(p, with_vectors) for p in points]
            if offset is None:
                return

    def drop(self, name: str) -> None:
        self.client.delete_collection(name)

    def swap(self, name: str, other: str) -> None:
        """Point the alias ``name`` at ``other`` in one request. Where ``name`` is a collection
        (the first swap), it is deleted first: a server's alias cannot share its name."""
        aliases = {a.alias_name for a in self.client.get_aliases().aliases}
        ops: list[Any] = []
        if name in aliases:
            ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(
                alias_name=name)))
        else:
            self.client.delete_collection(name)
        ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=other, alias_name=name)))
        self.client.update_collection_aliases(change_aliases_operations=ops)

    def close(self, failed: bool = False) -> None:
        self.client.close()


def _sparse(vector: Sparse) -> models.SparseVector:
    if isinstance(vector, models.SparseVector):
        return vector
    return models.SparseVector(indices=list(vector.indices), values=list(vector.values))


def _quantization(kind: str | None) -> Any:
    """The quantized copy of the pooled vectors, kept in RAM (None: none)."""
    if kind == "int8":
        return models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, quantile=QUANTILE, always_ram=True))
    if kind == "binary":
        return models.BinaryQuantization(binary=models.BinaryQuantizationConfig(
            always_ram=True, encoding=models.BinaryQuantizationEncoding(BINARY_ENCODING),
            query_encoding=models.BinaryQuantizationQueryEncoding(BINARY_QUERY_ENCODING)))
    return None


def _rescoring(r: SearchRequest) -> models.QuantizationSearchParams | None:
    """A quantized collection's dense stages: oversampled on the quantized vectors, rescored
    on the originals (``exact``: the originals alone)."""
    oversampling = r.rescoring
    if oversampling is None:
        return None
    if r.exact:
        return models.QuantizationSearchParams(ignore=True)
    return models.QuantizationSearchParams(rescore=True, oversampling=oversampling)


def _query(r: SearchRequest) -> dict[str, Any]:
    """The request as query_points arguments: prefetch + fusion, MMR, all in the engine; every
    stage that searches the pooled vector of a quantized collection rescores its oversampled
    candidates on the originals."""
    rescoring = _rescoring(r)
    params = models.SearchParams(exact=r.exact, hnsw_ef=r.hnsw_ef, quantization=rescoring) \
        if r.exact or r.hnsw_ef or rescoring else None
    flt = r.query_filter
    dense = None if r.dense is None else np.asarray(r.dense, dtype=np.float32).tolist()

    def stage(mode: str, lexical: bool = False) -> dict[str, Any]:
        if mode == "dense":
            if dense is None:
                raise InputError("this search needs the dense query vector")
            if r.windows is None:
                return {"query": dense, "params": params}
            candidates = [models.Prefetch(query=dense, params=params, filter=flt,
                                          limit=r.pooled_candidates)]  # then MaxSim over
            if lexical:  # these and BM25's
                candidates.append(models.Prefetch(limit=r.candidates, filter=flt,
                                                  **stage("sparse")))
            return {"query": np.asarray(r.windows, dtype=np.float32).tolist(),
                    "using": WINDOWS_NAME, "prefetch": candidates}
        if r.sparse is None:
            raise InputError("this search needs the sparse query vector")
        return {"query": _sparse(r.sparse), "using": SPARSE_NAME}

    if r.mode in ("dense", "sparse"):
        args: dict[str, Any] = {"prefetch": None, **stage(r.mode)}
    else:
        fusion: Any = models.FusionQuery(fusion=models.Fusion.DBSF) if r.fusion == "dbsf" \
            else models.RrfQuery(rrf=models.Rrf(k=r.rrf_k))
        args = {"query": fusion, "prefetch": [
            models.Prefetch(limit=r.candidates, filter=flt, **stage("dense", lexical=True)),
            models.Prefetch(limit=r.candidates, filter=flt, **stage("sparse")),
        ]}
    if r.diversity > 0:
        if dense is None:
            raise InputError("MMR (diversity > 0) needs the dense query vector")
        mmr = models.NearestQuery(nearest=dense, mmr=models.Mmr(
            diversity=r.diversity, candidates_limit=r.candidates))
        if r.mode != "dense" or args["prefetch"]:  # MMR re-ranks the stage's candidates
            args = {"prefetch": [models.Prefetch(limit=r.candidates, filter=flt, **args)]}
        args.update(query=mmr, using=None, params=params)
    args["search_params"] = args.pop("params", None)
    return {**args, "query_filter": flt, "limit": r.k}
