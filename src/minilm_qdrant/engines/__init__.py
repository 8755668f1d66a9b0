"""Engines store and search vectors; the collection manager drives them through `Engine`.

One file per engine. Engines know nothing of embedders or models: they see ids, float32
vectors, BM25 sparse vectors, JSON payloads and the collection's metadata (which carries the
fingerprint). A search is one small value, `SearchRequest`, that each engine turns into its own
query: prefetch + fusion and MMR run inside Qdrant, never in Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import numpy as np

from minilm_qdrant.documents import Distance
from minilm_qdrant.errors import InputError

SPARSE_NAME = "bm25"
"""The named sparse vector (BM25 weights; the engine applies the IDF modifier)."""
WINDOWS_NAME = "windows"
"""The named multivector holding every window's vector (MaxSim)."""
Mode = Literal["hybrid", "dense", "sparse"]
Fusion = Literal["dbsf", "rrf"]
Quantization = Literal["int8", "binary"]
MODES: tuple[Mode, ...] = ("hybrid", "dense", "sparse")
FUSIONS: tuple[Fusion, ...] = ("dbsf", "rrf")
QUANTIZATIONS: tuple[Quantization, ...] = ("int8", "binary")
OVERSAMPLING: dict[Quantization, float] = {"int8": 2.0, "binary": 4.0}
"""Candidates scored on the quantized vectors, as a multiple of those a stage keeps, that are
rescored on the originals (benchmarks/quantization.md: recall@10 against exact fp32 search)."""
BINARY_ENCODING = "two_bits"
"""Bits a component of a ``binary`` collection: ``one_bit``, ``one_and_half_bits`` or
``two_bits`` (Qdrant's encodings; fewer than 1,024 dimensions lose too much at one bit:
benchmarks/quantization.md)."""
BINARY_QUERY_ENCODING = "scalar8bits"
"""How a ``binary`` collection's query is compared: ``scalar8bits`` (asymmetric: the query in
8 bits against the stored bits) or ``default`` (the query in the stored bits)."""
QUANTILE = 0.99
"""int8: the share of each component's values that sets its range (outliers clipped), as
Qdrant's documentation recommends."""


class Sparse(Protocol):
    """A sparse vector: ``indices`` and their ``values`` (Edge's and qdrant-client's alike)."""

    @property
    def indices(self) -> list[int]: ...

    @property
    def values(self) -> list[float]: ...


@dataclass(frozen=True)
class ScaleOptions:
    """Pass-through settings for scale; None means the engine's default. (The collection's
    `CollectionOptions` adds what it stores beside the dense vector: BM25 and windows.)"""

    on_disk: bool | None = None
    """Keep vectors on disk (memory-mapped) instead of in RAM."""
    on_disk_payload: bool | None = None
    """Keep the payload (each document's stored text) on disk instead of in RAM. None: the
    engine's default: in RAM on the embedded Edge store (every hit reads its text; RAM the size
    of the texts), on disk on a Qdrant server (its default)."""
    hnsw_m: int | None = None
    hnsw_ef_construct: int | None = None
    hnsw_payload_m: int | None = None
    """Links of the per-tenant HNSW graphs Qdrant builds over the tenant index (with
    ``hnsw_m=0``: no global graph, every search inside one tenant)."""
    full_scan_threshold: int | None = None
    """KB of vectors under which a segment is searched by full scan instead of HNSW."""
    quantization: Quantization | None = None
    """A quantized copy of the pooled dense vectors in RAM, searched first, the originals on
    disk (unless ``on_disk=False``) for rescoring: ``int8`` (scalar, 4x smaller) or ``binary``
    (2 bits a component, 16x smaller); every search then rescores
    `SearchRequest.oversampling` times its candidates. None: the vectors as they are. The
    window vectors are not quantized (MaxSim reads them from disk for a few hundred candidates;
    benchmarks/quantization.md). qdrant-client's local mode has no quantization: it records the
    setting and searches exactly."""
    shard_number: int | None = None
    replication_factor: int | None = None
    write_consistency_factor: int | None = None
    window_datatype: Literal["float16", "float32"] = "float16"
    """How the window vectors are stored: float16 halves their memory and disk (most of a
    long-document collection) and the bytes MaxSim reads; the pooled vector stays float32."""

    def __post_init__(self) -> None:
        if self.window_datatype not in ("float16", "float32"):
            raise InputError(f"window_datatype {self.window_datatype!r} is not one of "
                             "'float16', 'float32'")
        if self.quantization is not None and self.quantization not in QUANTIZATIONS:
            raise InputError(f"quantization {self.quantization!r} is not one of "
                             f"{', '.join(map(repr, QUANTIZATIONS))} (or None)")

    @property
    def vectors_on_disk(self) -> bool | None:
        """Where the original dense vectors live: a quantized collection's on disk unless
        ``on_disk=False`` (the quantized copy answers from RAM)."""
        if self.quantization is not None and self.on_disk is None:
            return True
        return self.on_disk


@dataclass(frozen=True)
class CollectionInfo:
    size: int
    distance: Distance
    metadata: dict[str, Any] = field(default_factory=dict)
    sparse: bool = False
    """The collection has the BM25 sparse vector (``bm25``, IDF modifier)."""
    windows: bool = False
    """The collection has the ``windows`` multivector (every window of a text, MaxSim)."""


@dataclass(frozen=True)
class StoredPoint:
    id: str
    payload: dict[str, Any]
    score: float | None = None
    vector: np.ndarray | None = None
    sparse: Sparse | None = None
    windows: np.ndarray | None = None
    """(w, dim): the vector of each window, where the collection stores them."""

    @classmethod
    def from_record(cls, record: Any, with_vectors: bool) -> StoredPoint:
        """A point as both engines return it (a bare vector, or ``{"": dense, "bm25": sparse,
        "windows": [[...], ...]}``)."""
        vector = sparse = windows = None
        given = record.vector  # Edge builds its Python lists on each read: read it once
        named = given if isinstance(given, dict) else {"": given}
        if with_vectors and named.get("") is not None:
            vector = np.asarray(named[""], dtype=np.float32)
            sparse = named.get(SPARSE_NAME)
        if named.get(WINDOWS_NAME) is not None:
            windows = np.asarray(named[WINDOWS_NAME], dtype=np.float32)
        return cls(id=str(record.id), payload=record.payload or {}, vector=vector,
                   sparse=sparse, windows=windows, score=getattr(record, "score", None))


@dataclass(frozen=True)
class SearchRequest:
    """One search, engine-neutral: each engine turns it into its own query.

    - ``dense``: nearest ``dense`` vectors. ``sparse``: BM25 (the ``sparse`` query vector).
    - ``hybrid``: ``prefetch`` candidates from each, fused in the engine (``dbsf``: sum of
      scores normalised per side; ``rrf``: sum of 1 / (``rrf_k`` + rank)).
    - ``diversity`` > 0: the candidates are re-ranked by MMR over the dense vectors
      (0 = relevance only, 1 = diversity only); needs ``dense``.
    ``query_filter`` (a qdrant_client.models.Filter) applies to every stage.
    ``windows`` (the query's window vectors, in a collection that stores windows): the dense
    stage ranks by MaxSim over every window of each document the candidates of every index:
    `pooled_candidates` by the pooled vector (HNSW) and, in hybrid, the ``prefetch`` BM25
    candidates too (a mean of many windows blurs a long document: measured on SciFact-long,
    100 pooled candidates hold 71% of the relevant documents, 300 hold 89%, and with BM25's
    the MaxSim ranking is within 0.003 NDCG@10 of MaxSim over every document);
    ``dense`` is then the query's pooled vector.
    """

    k: int
    mode: Mode = "dense"
    dense: np.ndarray | None = None
    sparse: Sparse | None = None
    fusion: Fusion = "dbsf"
    prefetch: int = 100
    rrf_k: int = 60
    diversity: float = 0.0
    query_filter: Any | None = None
    exact: bool = False
    hnsw_ef: int | None = None
    windows: np.ndarray | None = None
    quantization: Quantization | None = None
    """The collection's quantization (its fingerprint's): every dense stage scores
    ``oversampling`` times its candidates on the quantized vectors and rescores them on the
    originals; ``exact`` ignores the quantized copy. None: no quantization parameters sent."""
    oversampling: float | None = None
    """None: `OVERSAMPLING` of the collection's quantization."""

    @property
    def rescoring(self) -> float | None:
        """The oversampling of a quantized collection's search (None: not quantized)."""
        if self.quantization is None:
            return None
        return self.oversampling if self.oversampling is not None \
            else OVERSAMPLING[self.quantization]

    @property
    def candidates(self) -> int:
        """Candidates per stage before fusion or MMR."""
        return max(self.prefetch, self.k)

    @property
    def pooled_candidates(self) -> int:
        """Candidates by the pooled vector that MaxSim ranks (windows only)."""
        return POOLED_DEPTH * self.candidates


POOLED_DEPTH = 3
"""How many times ``prefetch`` the pooled vector's HNSW hands to MaxSim (a pooled vector
finds a long document less surely than its best window does; MaxSim over 300 candidates of
16 windows is ~2 M multiply-adds, well under a millisecond)."""


class Engine(Protocol):
    """The small contract every engine keeps (same ids, same scores, same errors)."""

    in_process: bool
    """Requests stay in this process (Edge, local mode): no wire, so no request size bound."""

    def info(self, name: str) -> CollectionInfo | None:
        """The collection's vector size, distance and metadata; None when it does not exist."""
        ...

    def create(
        self, name: str, size: int, distance: Distance, metadata: dict[str, Any],
        options: ScaleOptions, *, sparse: bool, windows: bool,
    ) -> None:
        """Make the collection: one dense vector a point and, where asked, the BM25 sparse
        vector (``sparse``) and the windows multivector (``windows``)."""
        ...

    def drop(self, name: str) -> None:
        """Delete the collection and everything in it."""
        ...

    def upsert(
        self, name: str, ids: list[str], vectors: np.ndarray, payloads: list[dict[str, Any]],
        sparse: list[Sparse] | None = None, windows: list[np.ndarray] | None = None,
    ) -> None:
        """Write points (dense and, when given, sparse and window vectors in the same write)
        and return once they are acknowledged (durable)."""
        ...

    def search(self, name: str, request: SearchRequest) -> list[StoredPoint]:
        """The best ``request.k`` points, best first."""
        ...

    def retrieve(self, name: str, ids: list[str], windows: bool = False) -> list[StoredPoint]:
        """The stored points among ``ids`` (payloads; with ``windows``, their window vectors);
        missing ones are absent."""
        ...

    def count(self, name: str, query_filter: Any | None = None) -> int: ...

    def add_sparse(self, name: str) -> None:
        """Give an existing collection the BM25 sparse vector (idempotent); engines that
        cannot add a vector to a collection raise `InputError` saying what to do instead."""
        ...

    def upsert_sparse(self, name: str, ids: list[str], sparse: list[Sparse]) -> None:
        """Set the BM25 vectors of existing points (their dense vectors and payloads kept)."""
        ...

    def set_metadata(self, name: str, metadata: dict[str, Any]) -> None:
        """Replace the collection's metadata (the fingerprint)."""
        ...

    def delete(self, name: str, ids: list[str]) -> None: ...

    def delete_by_filter(self, name: str, query_filter: Any) -> None: ...

    def set_payload(
        self, name: str, values: dict[str, Any], key: str | None, *,
        ids: list[str] | None = None, query_filter: Any | None = None,
    ) -> None:
        """Merge ``values`` into the payload object at ``key`` (None: the payload itself) of
        the points chosen by ids or by filter (the other keys and the vectors are kept)."""
        ...

    def create_payload_index(self, name: str, field: str, kind: str) -> None:
        """Index a payload field ("keyword", "integer", "float", "bool", "text", ...; "tenant":
        a keyword index with `is_tenant`, points of a tenant stored together)."""
        ...

    def payload_indexes(self, name: str) -> dict[str, str]:
        """Indexed payload fields and their kinds (``{"metadata.topic": "keyword"}``)."""
        ...

    def optimize(self, name: str) -> None:
        """After a bulk ingest: build the HNSW index where the engine does not on its own."""
        ...

    def scroll(
        self, name: str, batch: int, with_vectors: bool = True, query_filter: Any | None = None
    ) -> Iterator[list[StoredPoint]]:
        """Every point (matching ``query_filter``), in pages of ``batch``."""
        ...

    def swap(self, name: str, other: str) -> None:
        """Make ``other``'s points answer under ``name`` (embedded store: the two exchange
        names; server: ``name`` becomes an alias of ``other``)."""
        ...

    def close(self, failed: bool = False) -> None:
        """Release the store; ``failed``: the run failed (an embedded store directory this
        engine made and left without a point is removed)."""
        ...
