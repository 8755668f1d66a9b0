"""Retrieval quality measured through the real pipeline: the corpus indexed through a
`Collection`, every judged query embedded with the embedder's query path (and BM25-encoded for
sparse and hybrid modes) and searched with `Collection.search_vector` (the path `search` takes),
and the run scored by trec_eval's measures through ``ir-measures`` (no hand-written formulas).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ir_measures
import numpy as np
from ir_measures import AP, RR, R, nDCG

from minilm_qdrant.collection import Collection, UpsertReport
from minilm_qdrant.engines import Fusion, Mode
from minilm_qdrant.errors import CollectionMismatch, InputError
from minilm_qdrant.evaluation.beir import (
    DEPTH,
    QUERY_CHUNK,
    BeirDataset,
    Qrels,
    Run,
    Spans,
    load_spans,
)


def metrics(qrels: Qrels, run: Run, k: int = 10) -> dict[str, float]:
    """NDCG@k, Recall@k, Recall@100, MRR@k and MAP@100 through ir-measures.

    NDCG, Recall and MAP are trec_eval's (pytrec_eval); MRR@k is MS MARCO's, as trec_eval's
    ``recip_rank`` has no cutoff. Providers are named so that no other one is picked silently.
    """
    trec = {f"ndcg@{k}": nDCG @ k, f"recall@{k}": R @ k, "recall@100": R @ 100,
            "map@100": AP @ 100}
    scores = ir_measures.pytrec_eval.calc_aggregate(list(set(trec.values())), qrels, run)
    mrr = ir_measures.msmarco.calc_aggregate([RR @ k], qrels, run)[RR @ k]
    named = {name: float(scores[measure]) for name, measure in trec.items()}
    named[f"mrr@{k}"] = float(mrr)
    return {key: named[key] for key in (f"ndcg@{k}", f"recall@{k}", "recall@100", f"mrr@{k}",
                                        "map@100")}


@dataclass
class EvalResult:
    """The figures of one evaluation."""

    scores: dict[str, float]
    queries: int
    index_seconds: float
    query_ms: list[float] = field(repr=False)
    model: str
    backend: str
    mode: str = "dense"
    reused_index: bool = False
    truncated: int = 0
    """Documents truncated to the model's token limit while indexing."""
    windows: int = 0
    """Windows embedded while indexing; ``windowed``: documents cut into more than one."""
    windowed: int = 0
    tokens: int = 0
    """Word pieces embedded while indexing."""

    def as_dict(self) -> dict[str, Any]:
        p50, p99 = np.percentile(self.query_ms, [50, 99]) if self.query_ms else (math.nan,) * 2
        return {
            **{name: round(v, 4) for name, v in self.scores.items()},
            "windows": self.windows, "windowed": self.windowed, "tokens": self.tokens,
            "queries": self.queries, "index_seconds": round(self.index_seconds, 2),
            "query_ms_p50": round(float(p50), 2), "query_ms_p99": round(float(p99), 2),
            "model": self.model, "backend": self.backend, "mode": self.mode,
        }


def ensure_indexed(
    collection: Collection, data: BeirDataset,
    on_progress: Callable[[int], None] | None = None,
) -> UpsertReport | None:
    """Index the corpus unless the collection already holds it (then None)."""
    have = collection.count()
    if have == len(data.doc_ids):
        return None
    if have > len(data.doc_ids):
        raise CollectionMismatch(
            f"Collection {collection.name!r} at {collection.where} holds {have} points but the "
            f"corpus has {len(data.doc_ids)} documents; it holds another corpus: use another "
            "--collection name."
        )
    return collection.upsert(data.documents(), on_progress=on_progress)


def run_queries(
    collection: Collection, queries: dict[str, str], depth: int = DEPTH,
    on_progress: Callable[[int], None] | None = None, *, mode: Mode | None = None,
    fusion: Fusion = "dbsf", prefetch: int = DEPTH,
    passages: dict[str, dict[str, tuple[int, int]]] | None = None,
) -> tuple[Run, list[float]]:
    """Search every query (embedded in batches); the run and each search's milliseconds
    (the engine's search alone: query encoding is outside the timer). ``passages`` collects
    the offsets of the passage each top-10 hit returned."""
    run: Run = {}
    millis: list[float] = []
    ids = list(queries)
    mode = collection.resolve_mode(mode)
    bm25 = collection.sparse if mode != "dense" else None
    for start in range(0, len(ids), QUERY_CHUNK):
        chunk = ids[start:start + QUERY_CHUNK]
        texts = [queries[q] for q in chunk]
        rows: list[Any] = [None] * len(chunk)
        if mode == "sparse":
            vectors: Any = rows
        elif collection.windows is not None:  # long queries cut like the documents
            rows = collection.windows.embed_queries(collection.embedder, texts)
            vectors = [collection.embedder.pooled(r) for r in rows]
        else:
            vectors = collection.embedder.embed_queries(texts)
        for qid, vector, windows in zip(chunk, vectors, rows, strict=True):
            sparse = bm25.encode_query(queries[qid]) if bm25 else None
            began = time.perf_counter()
            hits = collection.search_vector(
                vector, depth, sparse=sparse, mode=mode, fusion=fusion, prefetch=prefetch,
                windows=windows, passages=10 if passages is not None else 0)
            millis.append((time.perf_counter() - began) * 1000)
            run[qid] = {str(hit.id): hit.score for hit in hits}
            if passages is not None:
                passages[qid] = {str(h.id): (h.passage.start, h.passage.end)
                                 for h in hits[:10] if h.passage is not None}
            if on_progress:
                on_progress(1)
    return run, millis


def evaluate(
    collection: Collection, data: BeirDataset, k: int = 10,
    on_index: Callable[[int], None] | None = None,
    on_query: Callable[[int], None] | None = None, *, mode: Mode | None = None,
    fusion: Fusion = "dbsf", prefetch: int = DEPTH,
) -> EvalResult:
    """Index (or reuse), search every judged query (``mode``: the collection's default,
    hybrid where it has sparse vectors), and score the run."""
    if k < 1:
        raise InputError(f"k must be >= 1, got {k}")
    mode = collection.resolve_mode(mode)  # a mode the collection cannot run fails before indexing
    collection.embedder.load()  # weights load outside the timed index and queries
    report = ensure_indexed(collection, data, on_index)
    spans = load_spans(data)
    returned: dict[str, dict[str, tuple[int, int]]] | None = {} if spans else None
    run, millis = run_queries(collection, data.queries, max(k, DEPTH), on_query, mode=mode,
                              fusion=fusion, prefetch=prefetch, passages=returned)
    embedder = collection.embedder
    label = f"hybrid-{fusion}" if mode == "hybrid" else mode
    scores = metrics(data.qrels, run, k)
    if spans and returned is not None:
        scores["passage@10"] = passage_overlap(spans, returned)
    return EvalResult(
        scores, len(data.queries), report.seconds if report else 0.0,
        millis, embedder.spec.name, embedder.backend_name, mode=label,
        reused_index=report is None,
        truncated=report.truncated if report else 0,
        windows=report.windows if report else 0, windowed=report.windowed if report else 0,
        tokens=report.tokens if report else 0,
    )


def passage_overlap(spans: Spans, returned: dict[str, dict[str, tuple[int, int]]]) -> float:
    """Of the judged (query, document) pairs whose document is in the top 10, the share whose
    returned passage overlaps the answer's span."""
    hits = overlaps = 0
    for (qid, did), (start, end) in spans.items():
        got = returned.get(qid, {}).get(did)
        if got is not None:
            hits += 1
            overlaps += got[0] < end and start < got[1]
    return overlaps / hits if hits else math.nan


def exact_run(collection: Collection, queries: dict[str, str], depth: int = DEPTH) -> Run:
    """A brute-force numpy search over the vectors stored in the collection: the yardstick
    that shows what the Qdrant search path loses (nothing, it should be)."""
    distance = collection.embedder.spec.distance
    if distance not in ("dot", "cosine"):
        raise InputError(f"exact search supports dot and cosine, not {distance}")
    ids: list[str] = []
    rows: list[np.ndarray] = []
    # the handle's tenant only, as every search sees
    for points in collection.engine.scroll(collection.name, 1024, True,
                                           collection.scope.filter(None)):
        for p in points:
            if p.vector is not None:
                doc_id = p.payload.get("doc_id")
                ids.append(str(doc_id if doc_id is not None else p.id))
                rows.append(p.vector)
    if not rows:
        raise InputError(f"collection {collection.name!r} holds no vectors")
    docs = np.stack(rows).astype(np.float32)
    if distance == "cosine":
        docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    n = min(depth, len(ids))
    qids = list(queries)
    run: Run = {}
    for start in range(0, len(qids), QUERY_CHUNK):
        chunk = qids[start:start + QUERY_CHUNK]
        vectors = collection.embedder.embed_queries([queries[q] for q in chunk])
        if distance == "cosine":
            vectors = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        scores = vectors @ docs.T
        top = np.argpartition(-scores, n - 1, axis=1)[:, :n]
        for row, qid in enumerate(chunk):
            run[qid] = {ids[j]: float(scores[row, j]) for j in top[row]}
    return run
