"""Search: the query embedded (its windows where it is long) and BM25-encoded, one request
(prefetch, fusion, MMR, MaxSim all inside Qdrant), hits with the passage that answered. A room
built from `Parts`; the filter of every stage is confined to the handle's tenant."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from qdrant_client import models

from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.documents import Hit
from minilm_qdrant.engines import (
    FUSIONS,
    MODES,
    Fusion,
    Mode,
    SearchRequest,
    Sparse,
    StoredPoint,
)
from minilm_qdrant.errors import InputError
from minilm_qdrant.sparse import Bm25Encoder
from minilm_qdrant.windows import (
    CODES_KEY,
    SPANS_KEY,
    best_window,
    coded_windows,
    passage,
)


@dataclass(frozen=True)
class Search:
    """Searches of one collection handle (dense, sparse or hybrid; MMR; passages)."""

    parts: Parts

    @property
    def default_mode(self) -> Mode:
        """``hybrid`` where the collection has BM25 sparse vectors, else ``dense``."""
        return "hybrid" if self.parts.sparse is not None else "dense"

    def search(
        self, query: str, k: int = 10, *, mode: Mode | None = None,
        query_filter: models.Filter | None = None, fusion: Fusion = "dbsf", prefetch: int = 100,
        diversity: float = 0.0, exact: bool = False, hnsw_ef: int | None = None,
        passages: int | None = None, oversampling: float | None = None,
    ) -> list[Hit]:
        """The k best documents for ``query``, best first (higher score = closer).

        ``mode``: ``hybrid`` (default where the collection has sparse vectors: dense and BM25
        candidates, ``prefetch`` from each, fused in the engine by ``dbsf`` or ``rrf``),
        ``dense`` or ``sparse``. ``diversity`` (0-1) re-ranks the candidates by MMR in the
        engine. ``query_filter`` applies to every stage. ``exact`` scans every dense vector;
        ``hnsw_ef`` widens the HNSW search (recall vs speed). ``passages``: only the first that
        many hits carry their passage; None: every hit. ``oversampling``: in a quantized
        collection, how many times its candidates a dense stage scores on the quantized
        vectors before rescoring them on the originals (None: the quantization's default,
        `engines.OVERSAMPLING`; ignored in a collection that is not quantized).
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError("the search query is empty")
        mode = self.resolve_mode(mode)
        dense = windows = None
        if mode != "sparse" or diversity:
            if self.parts.windows is not None:  # a long query is cut like the documents
                windows = self.parts.windows.embed_query(self.parts.embedder, query)
                dense = self.parts.embedder.pooled(windows)
            else:
                dense = self.parts.embedder.embed_query(query)
        parts = self.parts
        sparse = parts.sparse.encode_query(query) if parts.sparse and mode != "dense" else None
        return self.search_vector(
            dense, k, sparse=sparse, mode=mode, query_filter=query_filter, fusion=fusion,
            prefetch=prefetch, diversity=diversity, exact=exact, hnsw_ef=hnsw_ef,
            windows=windows, passages=passages, oversampling=oversampling,
        )

    def search_vector(
        self, vector: np.ndarray | None, k: int = 10, *, sparse: Sparse | None = None,
        mode: Mode | None = None, query_filter: models.Filter | None = None,
        fusion: Fusion = "dbsf", prefetch: int = 100, diversity: float = 0.0,
        exact: bool = False, hnsw_ef: int | None = None, windows: np.ndarray | None = None,
        passages: int | None = None, oversampling: float | None = None,
    ) -> list[Hit]:
        """Search with already encoded query vectors (dense and/or BM25 sparse; ``windows``:
        the query's window vectors, default the one dense vector).

        ``mode`` defaults to what is given: both -> hybrid, one -> that one. Each hit carries
        the passage that answered (the best window: by the dense query where there is one,
        else by BM25); with ``passages``, only the first that many hits do. A long hit's window
        vectors come from its payload (`CODES_KEY`); a point written before they were stored
        there has them read from the engine in a second request.
        """
        if mode is None:
            mode = "dense" if sparse is None else "sparse" if vector is None else "hybrid"
        if self.parts.windows is not None and vector is not None and windows is None:
            windows = np.asarray(vector, dtype=np.float32)[None, :]
        request = SearchRequest(
            k=k, mode=self.resolve_mode(mode), dense=vector, sparse=sparse, fusion=fusion,
            prefetch=prefetch, diversity=diversity,
            query_filter=self.parts.scope.filter(query_filter),
            exact=exact,
            hnsw_ef=hnsw_ef, windows=windows if self.parts.windows is not None else None,
            quantization=self.parts.quantization, oversampling=oversampling,
        )
        _check(request)
        points = self.parts.call(lambda: self.parts.engine.search(self.parts.name, request),
                            f"searching {self.parts.name!r}")
        first = points if passages is None else points[:passages]
        if request.windows is not None:  # the long hits' window vectors, to pick the passage
            first = [replace(p, windows=_coded(p, request.windows.shape[-1])) for p in first]
            old = [p.id for p in first if p.windows is None and _spans(p) > 1]
            read = {p.id: p.windows for p in self.parts.call(
                lambda: self.parts.engine.retrieve(self.parts.name, old, windows=True),
                f"reading {self.parts.name!r}")} if old else {}  # written before the codes
            first = [replace(p, windows=read[p.id]) if p.id in read else p for p in first]
        return [self._hit(p, windows, sparse) for p in first] + [
            Hit.from_point(p.id, float(p.score or 0.0), p.payload) for p in points[len(first):]]

    def _hit(self, point: StoredPoint, query: np.ndarray | None, sparse: Sparse | None) -> Hit:
        hit = Hit.from_point(point.id, float(point.score or 0.0), point.payload)
        spans = point.payload.get(SPANS_KEY)
        best = 0
        if spans and len(spans) > 1:
            if query is not None and point.windows is not None:
                best = best_window(query, point.windows)
            elif sparse is not None and self.parts.sparse is not None:
                best = _by_terms(self.parts.sparse, sparse, [hit.text[a:b] for a, b in spans])
        return replace(hit, passage=passage(hit.text, spans, best))

    def resolve_mode(self, mode: Mode | None) -> Mode:
        """``mode``, or the default; a mode this collection cannot run raises `InputError`."""
        if mode is None:
            return self.default_mode
        if mode not in MODES:
            raise InputError(f"search mode {mode!r} is not one of {', '.join(MODES)}")
        if mode != "dense" and self.parts.sparse is None:
            raise InputError(
                f"Collection {self.parts.name!r} at {self.parts.where} has no BM25 sparse "
                f"vectors (it was made dense-only, or before hybrid search), so mode {mode!r} "
                "cannot run: search it with mode 'dense' (--mode dense); or add them from the "
                "stored text without re-embedding (minilm-qdrant add-sparse, "
                "Collection.add_sparse(); embedded store), or index the documents into a new "
                "collection, which gets them."
            )
        return mode


def _check(r: SearchRequest) -> None:
    if r.k < 1:
        raise InputError(f"k must be >= 1, got {r.k}")
    if r.fusion not in FUSIONS:
        raise InputError(f"fusion {r.fusion!r} is not one of {', '.join(FUSIONS)}")
    if r.prefetch < 1:
        raise InputError(f"prefetch must be >= 1, got {r.prefetch}")
    if not 0.0 <= r.diversity <= 1.0:
        raise InputError(f"diversity must be between 0 and 1, got {r.diversity}")
    if r.oversampling is not None and not r.oversampling >= 1.0:
        raise InputError(f"oversampling must be >= 1, got {r.oversampling}")


def _spans(point: StoredPoint) -> int:
    return len(point.payload.get(SPANS_KEY) or ())


def _coded(point: StoredPoint, dim: int) -> np.ndarray | None:
    """A long point's window vectors from its payload (None where it has none that fit)."""
    codes = point.payload.get(CODES_KEY)
    rows = coded_windows(codes, dim) if isinstance(codes, str) and _spans(point) > 1 else None
    return rows if rows is not None and len(rows) == _spans(point) else None


def _by_terms(encoder: Bm25Encoder, query: Sparse, texts: list[str]) -> int:
    """The text sharing the most BM25 weight with the query (the passage of a sparse hit)."""
    wanted = dict(zip(query.indices, query.values, strict=True))
    scores = [sum(wanted.get(i, 0.0) * v for i, v in zip(s.indices, s.values, strict=True))
              for s in encoder.encode_documents(texts)]
    return int(np.argmax(scores))
