"""Requests in the public types -> Qdrant Edge's: searches (prefetch + fusion, MMR), sparse
vectors, filters (``qdrant_client.models.Filter``), and a collection's settings (its shard's
config).

Every filter condition is translated or refused with `InputError`; none is dropped (a dropped
condition would silently change what a search or a delete matches).
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import qdrant_edge as qe
from qdrant_client import models

from minilm_qdrant.engines import (
    BINARY_ENCODING,
    BINARY_QUERY_ENCODING,
    QUANTILE,
    SPARSE_NAME,
    WINDOWS_NAME,
    ScaleOptions,
    SearchRequest,
    Sparse,
)
from minilm_qdrant.errors import InputError


def to_edge_query(r: SearchRequest, default_hnsw_ef: int | None = None) -> qe.QueryRequest:
    """The request as Edge's query: prefetch + fusion, MMR, all in the engine; every stage
    that searches the pooled vector of a quantized collection rescores its oversampled
    candidates on the originals."""
    flt = to_edge_filter(r.query_filter)
    params = qe.SearchParams(hnsw_ef=r.hnsw_ef or default_hnsw_ef, exact=r.exact,
                             quantization=to_edge_rescoring(r))
    dense = None if r.dense is None else np.asarray(r.dense, dtype=np.float32).tolist()

    def nearest_dense() -> Any:
        if dense is None:
            raise InputError("this search needs the dense query vector")
        return qe.Query.Nearest(dense)

    def nearest_sparse() -> Any:
        if r.sparse is None:
            raise InputError("this search needs the sparse query vector")
        return qe.Query.Nearest(to_edge_sparse(r.sparse), using=SPARSE_NAME)

    def dense_stage(lexical: bool = False) -> tuple[Any, list[qe.Prefetch] | None]:
        """Nearest pooled vectors; with windows, MaxSim over the candidates of the pooled
        vector and (``lexical``) of BM25."""
        if r.windows is None:
            return nearest_dense(), None
        rows = np.asarray(r.windows, dtype=np.float32).tolist()
        candidates = [qe.Prefetch(limit=r.pooled_candidates, query=nearest_dense(), filter=flt,
                                  params=params)]
        if lexical:
            candidates.append(qe.Prefetch(limit=r.candidates, query=nearest_sparse(),
                                          filter=flt))
        return qe.Query.Nearest(rows, using=WINDOWS_NAME), candidates

    prefetches: list[qe.Prefetch] | None = None
    if r.mode == "dense":
        query, prefetches = dense_stage()
    elif r.mode == "sparse":
        query = nearest_sparse()
    else:
        by_dense, below = dense_stage(lexical=True)
        prefetches = [
            qe.Prefetch(limit=r.candidates, query=by_dense, prefetches=below, filter=flt,
                        params=params),
            qe.Prefetch(limit=r.candidates, query=nearest_sparse(), filter=flt),
        ]
        query = qe.Fusion.Dbsf() if r.fusion == "dbsf" else qe.Fusion.Rrf(k=r.rrf_k)
    if r.diversity > 0:
        if dense is None:
            raise InputError("MMR (diversity > 0) needs the dense query vector")
        mmr = qe.Mmr(dense, 1.0 - r.diversity, r.candidates)
        if r.mode != "dense" or prefetches:  # MMR re-ranks the candidates of the stage
            prefetches = [qe.Prefetch(limit=r.candidates, query=query,
                                      prefetches=prefetches, filter=flt, params=params)]
        query = mmr
    return qe.QueryRequest(
        limit=r.k, query=query, prefetches=prefetches, filter=flt, params=params,
        with_payload=True,
    )


def to_edge_rescoring(r: SearchRequest) -> qe.QuantizationSearchParams | None:
    """How a quantized collection's dense stages search: oversampled on the quantized vectors,
    rescored on the originals (``exact``: the originals alone)."""
    oversampling = r.rescoring
    if oversampling is None:
        return None
    if r.exact:
        return qe.QuantizationSearchParams(ignore=True)
    return qe.QuantizationSearchParams(rescore=True, oversampling=oversampling)


def to_edge_sparse(vector: Sparse) -> qe.SparseVector:
    if isinstance(vector, qe.SparseVector):
        return vector
    return qe.SparseVector(list(vector.indices), list(vector.values))


def to_edge_filter(flt: Any | None) -> qe.Filter | None:
    """Translate the Filter of the public API (qdrant_client.models) into Edge's types."""
    if flt is None:
        return None
    if isinstance(flt, dict):
        flt = models.Filter.model_validate(flt)
    if not isinstance(flt, models.Filter):
        raise InputError(f"query_filter must be a qdrant_client.models.Filter, not {type(flt)}")
    min_should = None
    if flt.min_should is not None:
        min_should = qe.MinShould(
            [_condition(c) for c in flt.min_should.conditions], flt.min_should.min_count)
    return qe.Filter(
        must=_conditions(flt.must), should=_conditions(flt.should),
        must_not=_conditions(flt.must_not), min_should=min_should,
    )


def _conditions(part: Any) -> list[Any] | None:
    if part is None:
        return None
    return [_condition(c) for c in (part if isinstance(part, list) else [part])]


def _condition(c: Any) -> Any:
    if isinstance(c, models.Filter):
        return to_edge_filter(c)
    if isinstance(c, models.FieldCondition):
        unknown = set(c.model_fields_set) - _FIELD_PARTS
        if unknown:
            raise InputError(
                f"filter condition on {c.key!r} uses {sorted(unknown)}, which the embedded store "
                "cannot apply; use a Qdrant server (--url) or another condition"
            )
        return qe.FieldCondition(
            key=c.key, match=_match(c.match), range=_range(c.range),
            geo_bounding_box=None if c.geo_bounding_box is None else qe.GeoBoundingBox(
                _geo(c.geo_bounding_box.top_left), _geo(c.geo_bounding_box.bottom_right)),
            geo_radius=None if c.geo_radius is None else qe.GeoRadius(
                _geo(c.geo_radius.center), c.geo_radius.radius),
            geo_polygon=None if c.geo_polygon is None else qe.GeoPolygon(
                [_geo(p) for p in c.geo_polygon.exterior.points],
                [[_geo(p) for p in ring.points] for ring in c.geo_polygon.interiors or []]
                or None),
            values_count=None if c.values_count is None else qe.ValuesCount(
                lt=c.values_count.lt, gt=c.values_count.gt,
                lte=c.values_count.lte, gte=c.values_count.gte),
            is_empty=c.is_empty, is_null=c.is_null,
        )
    if isinstance(c, models.IsEmptyCondition):
        return qe.IsEmptyCondition(c.is_empty.key)
    if isinstance(c, models.IsNullCondition):
        return qe.IsNullCondition(c.is_null.key)
    if isinstance(c, models.HasIdCondition):
        return qe.HasIdCondition({str(i) if not isinstance(i, int) else i for i in c.has_id})
    if isinstance(c, models.HasVectorCondition):
        return qe.HasVectorCondition(c.has_vector)
    if isinstance(c, models.NestedCondition):
        nested = to_edge_filter(c.nested.filter)
        assert nested is not None
        return qe.NestedCondition(c.nested.key, nested)
    raise InputError(f"filter condition {type(c).__name__} is not supported by the embedded store")


_FIELD_PARTS = {"key", "match", "range", "geo_bounding_box", "geo_radius", "geo_polygon",
                "values_count", "is_empty", "is_null"}


def _geo(point: models.GeoPoint) -> qe.GeoPoint:
    return qe.GeoPoint(lon=point.lon, lat=point.lat)


def _match(m: Any) -> Any:
    if m is None:
        return None
    values = [getattr(m, "value", None), *(getattr(m, "any", None) or []),
              *(getattr(m, "except_", None) or [])]
    if any(isinstance(v, bool) for v in values):
        # qdrant-edge 0.9.0 matches True as the integer 1 and finds no boolean: refuse rather
        # than return wrong results
        raise InputError(
            f"matching a boolean ({type(m).__name__}) is not supported by the embedded store; "
            "store the flag as a string or an integer, or use a Qdrant server (--url)"
        )
    table: dict[type, Any] = {
        models.MatchValue: lambda: qe.MatchValue(m.value),
        models.MatchAny: lambda: qe.MatchAny(list(m.any)),
        models.MatchExcept: lambda: qe.MatchExcept(list(m.except_)),
        models.MatchText: lambda: qe.MatchText(m.text),
        models.MatchTextAny: lambda: qe.MatchTextAny(m.text_any),
        models.MatchPhrase: lambda: qe.MatchPhrase(m.phrase),
    }
    build = table.get(type(m))
    if build is None:
        raise InputError(f"match {type(m).__name__} is not supported by the embedded store")
    return build()


def _range(r: Any) -> Any:
    if r is None:
        return None
    if isinstance(r, models.DatetimeRange):
        iso = [None if v is None else (v if isinstance(v, str) else v.isoformat())
               for v in (r.gte, r.gt, r.lte, r.lt)]
        return qe.RangeDateTime(gte=iso[0], gt=iso[1], lte=iso[2], lt=iso[3])
    return qe.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte, lt=r.lt)


_DISTANCE = {"dot": qe.Distance.Dot, "cosine": qe.Distance.Cosine, "euclid": qe.Distance.Euclid}


_BINARY_ENCODING = {"one_bit": qe.BinaryQuantizationEncoding.OneBit,
                    "one_and_half_bits": qe.BinaryQuantizationEncoding.OneAndHalfBits,
                    "two_bits": qe.BinaryQuantizationEncoding.TwoBits}
_QUERY_ENCODING = {"default": qe.BinaryQuantizationQueryEncoding.Default,
                   "scalar8bits": qe.BinaryQuantizationQueryEncoding.Scalar8Bits}


def to_edge_quantization(kind: str | None) -> Any:
    """The quantized copy of the pooled vectors, kept in RAM (None: none)."""
    if kind == "int8":
        return qe.ScalarQuantizationConfig(type=qe.ScalarType.Int8, quantile=QUANTILE,
                                           always_ram=True)
    if kind == "binary":
        return qe.BinaryQuantizationConfig(
            always_ram=True, encoding=_BINARY_ENCODING[BINARY_ENCODING],
            query_encoding=_QUERY_ENCODING[BINARY_QUERY_ENCODING])
    return None


def to_edge_config(meta: dict[str, Any]) -> qe.EdgeConfig:
    """A shard's config from a collection's metadata (size, distance, options, sparse).

    A quantized collection keeps its original vectors on disk (unless ``on_disk`` is False)
    and indexes segments of any size, so that the quantized copy exists as soon as the ingest
    optimizes (Qdrant's default indexes a segment only past 10 MB of vectors, about 6,600
    points: below that a quantized collection would search its originals)."""
    opts = meta.get("options", {})
    scale = ScaleOptions(**{f.name: opts[f.name] for f in fields(ScaleOptions) if f.name in opts})
    hnsw = None
    keys = ("hnsw_m", "hnsw_ef_construct", "full_scan_threshold", "hnsw_payload_m")
    if any(opts.get(k) is not None for k in keys):
        def given(key: str, default: int) -> int:
            return default if opts.get(key) is None else int(opts[key])  # m=0 is a choice

        hnsw = qe.HnswIndexConfig(
            m=given("hnsw_m", 16), ef_construct=given("hnsw_ef_construct", 100),
            full_scan_threshold=given("full_scan_threshold", 10_000),
            payload_m=opts.get("hnsw_payload_m"),
        )
    optimizers = None
    if opts.get("full_scan_threshold") is not None:  # index as soon as a scan would be slower
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=max(1, opts["full_scan_threshold"]))
    elif scale.quantization is not None:  # the quantized copy at any size
        optimizers = qe.EdgeOptimizersConfig(indexing_threshold=1)
    sparse = {name: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)
              for name in meta.get("sparse_vectors", [])}
    dense = qe.EdgeVectorParams(
        size=int(meta["size"]), distance=_DISTANCE[meta["distance"]],
        on_disk=scale.vectors_on_disk,
        quantization_config=to_edge_quantization(scale.quantization))
    vectors: Any = dense
    if WINDOWS_NAME in meta.get("multivectors", []):  # ranked by MaxSim, never searched by HNSW
        vectors = {"": dense, WINDOWS_NAME: qe.EdgeVectorParams(
            size=int(meta["size"]), distance=_DISTANCE[meta["distance"]],
            on_disk=scale.vectors_on_disk,
            datatype=qe.VectorStorageDatatype.Float16
            if opts.get("window_datatype") == "float16" else None,
            multivector_config=qe.MultiVectorConfig(qe.MultiVectorComparator.MaxSim),
            hnsw_config=qe.HnswIndexConfig(m=0, ef_construct=100, full_scan_threshold=10_000))}
    return qe.EdgeConfig(
        vectors=vectors,
        sparse_vectors=sparse or None,
        # the payload in RAM unless asked: every hit reads its text (and a long hit its
        # passage), and Edge's on-disk payload costs a new query at 100,000 long documents
        # 2.6 ms more (benchmarks/windows.md); existing shards keep what they were made with
        on_disk_payload=bool(opts.get("on_disk_payload", False)),
        hnsw_config=hnsw, optimizers=optimizers,
    )
