"""`Collection`: a Qdrant collection sized, scored and fingerprinted for one embedder; the one
public facade over its rooms.

It opens the engine where the collection lives (`Location`), creates or validates the
collection (`parts.open_parts`: models are never mixed in one) and composes the rooms, each
built from one frozen `Parts` value: the write path (bounded, retried batches; dense, window and
BM25 vectors of a point in one write), search (dense, sparse or hybrid fused in the engine; MMR;
passages), the lifecycle (get, delete, update by the caller's ids or by filter) and reembed.
Every room is confined to the handle's tenant. It does not know which engine it drives: a
Qdrant server or cluster, qdrant-client's local mode, or an embedded shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace

import numpy as np
from qdrant_client import QdrantClient, models

from minilm_qdrant import retry
from minilm_qdrant.collection.batching import MAX_BATCH_BYTES
from minilm_qdrant.collection.lifecycle import Lifecycle
from minilm_qdrant.collection.options import CollectionOptions
from minilm_qdrant.collection.parts import open_parts
from minilm_qdrant.collection.reembed import ReembedReport, reembed
from minilm_qdrant.collection.report import UpsertReport
from minilm_qdrant.collection.search import Search
from minilm_qdrant.collection.write import OnRefused, WritePath
from minilm_qdrant.documents import Document, Hit
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import Engine, Fusion, Mode, Quantization, Sparse
from minilm_qdrant.engines.location import Location
from minilm_qdrant.errors import CollectionMismatch, CollectionNotFound, InputError
from minilm_qdrant.fingerprint import FINGERPRINT_KEY
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings
from minilm_qdrant.tenancy import Scope, check_tenant
from minilm_qdrant.windows import Windows

__all__ = ["DEFAULT_COLLECTION", "FINGERPRINT_KEY", "Collection", "UpsertReport"]
DEFAULT_COLLECTION = "documents"
PAYLOAD_INDEX_KINDS = ("keyword", "integer", "float", "bool", "text", "datetime", "uuid", "geo")


class Collection:
    """One collection for one embedder.

    Args:
        name: collection name.
        embedder: the embedder; default: the model recorded in an existing collection's
            fingerprint, else the default model.
        path / url / api_key / client / engine / location: where it lives (``location``: the
            first four in one `Location`); default in memory. ``path=DIR``: the embedded Qdrant
            Edge store (or local mode where DIR holds one); ``path=":memory:"`` works.
        options: settings used when the collection is created (scale; ``sparse``: BM25, or
            None: dense only; ``windows``: `WindowSettings`; ``quantization``: ``int8`` or
            ``binary``, originals on disk, every search rescored).
        create: create the collection when missing (else `CollectionNotFound`).
        batch_size / max_batch_bytes: ingest batches are bounded by both (several points aim
            at 4 MiB, a long document goes alone; ``max_batch_bytes`` default: 30 MiB to a
            server, none in this process, where every window of any text is stored); texts
            are sorted by length for embedding within a batch.
        retry_policy: how transient failures are retried.
        backend: the backend of the embedder built here (none given): ``torch``, ``onnx``...
        tenant: confine every operation to this tenant (a new collection is made tenanted;
            an existing one must be). See `minilm_qdrant.tenancy` and `tenant()`.
        all_tenants: read every tenant's documents and write none (an administrator's choice,
            what ``reembed`` needs); an untenanted collection opens as it is.
    """

    def __init__(
        self,
        name: str = DEFAULT_COLLECTION,
        embedder: Embedder | None = None,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: QdrantClient | None = None,
        engine: Engine | None = None,
        location: Location | None = None,
        options: CollectionOptions | None = None,
        create: bool = True,
        batch_size: int = 256,
        max_batch_bytes: int | None = None,
        retry_policy: retry.RetryPolicy | None = None,
        allow_insecure: bool = False,
        backend: str = "auto",
        tenant: str | None = None,
        all_tenants: bool = False,
    ) -> None:
        if batch_size < 1 or (max_batch_bytes is not None and max_batch_bytes < 1):
            raise ValueError("batch_size and max_batch_bytes must be positive")
        if tenant is not None and all_tenants:
            raise InputError("give tenant=NAME or all_tenants=True, not both")
        if location is not None and any(v is not None for v in (path, url, api_key, client)):
            raise InputError("give location= or path/url/api_key/client, not both")
        location = location or Location(path, url, api_key, client, allow_insecure)
        scope = Scope(tenant is not None or all_tenants,
                      None if tenant is None else check_tenant(tenant))
        self._view = False
        self.backend = backend
        where = location.shown if engine is None or location != Location() \
            else getattr(engine, "where", "engine")  # a caller's engine, named by the caller
        owned = engine is None and location.client is None  # a caller's stays open
        try:
            opened = engine or location.open(create=create)
        except CollectionNotFound as exc:  # no store there at all (a read creates none)
            raise CollectionNotFound(f"Collection {name!r} does not exist: {exc}") from None
        try:
            self.parts = open_parts(
                opened, name, where, embedder, options=options or CollectionOptions(),
                create=create, scope=scope, all_tenants=all_tenants, backend=backend,
                retry_policy=retry_policy or retry.RetryPolicy(), batch_size=batch_size)
        except BaseException:
            if owned:
                opened.close(failed=True)
            raise
        self.max_batch_bytes = max_batch_bytes if max_batch_bytes is not None else \
            None if opened.in_process else MAX_BATCH_BYTES
        """The request bound a document's point must fit (None: none, in this process)."""

    # --- what it is ---------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self.parts.name

    @property
    def where(self) -> str:
        """Where the collection lives, for messages (a URL without its credentials)."""
        return self.parts.where

    @property
    def engine(self) -> Engine:
        return self.parts.engine

    @property
    def embedder(self) -> Embedder:
        return self.parts.embedder

    @property
    def sparse(self) -> Bm25Encoder | None:
        """The BM25 encoder of a collection with sparse vectors, else None."""
        return self.parts.sparse

    @property
    def windows(self) -> Windows | None:
        """How texts are cut into windows; None for a collection made before windows."""
        return self.parts.windows

    @property
    def scope(self) -> Scope:
        """The tenant this handle is confined to (`minilm_qdrant.tenancy`)."""
        return self.parts.scope

    @property
    def retry_policy(self) -> retry.RetryPolicy:
        return self.parts.retry_policy

    @property
    def origins(self) -> bool:
        """Folder syncs mark what they write; False for a collection made before the mark."""
        return self.parts.origins

    @property
    def quantization(self) -> Quantization | None:
        """How the pooled vectors are quantized (``int8``, ``binary``; the fingerprint's), or
        None; searches rescore on the originals."""
        return self.parts.quantization

    @property
    def batch_size(self) -> int:
        return self.parts.batch_size

    @batch_size.setter
    def batch_size(self, value: int) -> None:
        self.parts = replace(self.parts, batch_size=value)

    @property
    def windowed(self) -> bool:
        """Whether every window of a long text reaches a vector (else texts are truncated:
        a collection made before windows; ``reembed`` moves it)."""
        return self.parts.windows is not None

    @property
    def default_mode(self) -> Mode:
        """``hybrid`` where the collection has BM25 sparse vectors, else ``dense``."""
        return Search(self.parts).default_mode

    def __repr__(self) -> str:
        tenant = f", tenant={self.scope.tenant!r}" if self.scope.tenant is not None else ""
        quantized = f", quantization={self.quantization!r}" if self.quantization else ""
        return (f"Collection({self.name!r}, where={self.where!r}, embedder={self.embedder!r}"
                f"{tenant}{quantized})")

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close(failed=exc[0] is not None)

    def close(self, failed: bool = False) -> None:
        """Release the store (and its lock, for embedded stores); a tenant's view leaves it to
        the handle it came from. ``failed`` (as when the ``with`` block raised): an embedded
        store directory this handle made and left without a point is removed."""
        if not self._view:
            self.engine.close(failed=failed)

    def tenant(self, name: str) -> Collection:
        """A view of this tenanted collection confined to tenant ``name`` (same store and
        model; cheap: make one per request)."""
        if not self.scope.tenanted:
            raise CollectionMismatch(
                f"Collection {self.name!r} at {self.where} is not tenanted: its documents belong "
                "to no tenant. Index into a new collection opened with tenant=NAME.")
        view = object.__new__(Collection)
        view.__dict__.update(self.__dict__)
        view.parts, view._view = replace(self.parts, scope=Scope(True, check_tenant(name))), True
        return view

    # --- the rooms ----------------------------------------------------------------------

    def writer(self) -> WritePath:
        """The write path of this collection, given everything it needs."""
        return WritePath(self.parts, self.max_batch_bytes)

    def upsert(
        self,
        documents: Iterable[Document],
        *,
        on_progress: Callable[[int], None] | None = None,
        optimize: bool = True,
        vectors: Mapping[str | int, Sequence[float]] | None = None,
        embedded_text: Callable[[Document], str] | None = None,
        skip_unchanged: bool = True,
        on_refused: OnRefused | None = None,
    ) -> UpsertReport:
        """Embed and write documents in bounded batches, each acknowledged before it counts
        (a point's vectors in one write; `WritePath.write`). A document that cannot be stored
        stops the ingest, named, after what came before it (``on_refused``: handed to it, the
        rest goes on). ``vectors`` (by id): a framework's vectors of this model (one checked).
        Documents stored unchanged are skipped unless ``skip_unchanged=False``. Raises
        `IngestError` (carrying the report) when a batch fails for good; rerunning the same
        ingest completes it without duplicates (point ids are deterministic)."""
        return self.writer().write(documents, on_progress=on_progress, optimize=optimize,
                                   vectors=vectors, embedded_text=embedded_text,
                                   skip_unchanged=skip_unchanged, on_refused=on_refused)

    def search(
        self, query: str, k: int = 10, *, mode: Mode | None = None,
        query_filter: models.Filter | None = None, fusion: Fusion = "dbsf", prefetch: int = 100,
        diversity: float = 0.0, exact: bool = False, hnsw_ef: int | None = None,
        passages: int | None = None, oversampling: float | None = None,
    ) -> list[Hit]:
        """The k best documents for ``query``, best first (higher score = closer); see
        `Search.search`."""
        return Search(self.parts).search(
            query, k, mode=mode, query_filter=query_filter, fusion=fusion, prefetch=prefetch,
            diversity=diversity, exact=exact, hnsw_ef=hnsw_ef, passages=passages,
            oversampling=oversampling)

    def search_vector(
        self, vector: np.ndarray | None, k: int = 10, *, sparse: Sparse | None = None,
        mode: Mode | None = None, query_filter: models.Filter | None = None,
        fusion: Fusion = "dbsf", prefetch: int = 100, diversity: float = 0.0,
        exact: bool = False, hnsw_ef: int | None = None, windows: np.ndarray | None = None,
        passages: int | None = None, oversampling: float | None = None,
    ) -> list[Hit]:
        """Search with already encoded query vectors; see `Search.search_vector`."""
        return Search(self.parts).search_vector(
            vector, k, sparse=sparse, mode=mode, query_filter=query_filter, fusion=fusion,
            prefetch=prefetch, diversity=diversity, exact=exact, hnsw_ef=hnsw_ef,
            windows=windows, passages=passages, oversampling=oversampling)

    def resolve_mode(self, mode: Mode | None) -> Mode:
        """``mode``, or the default; a mode this collection cannot run raises `InputError`."""
        return Search(self.parts).resolve_mode(mode)

    def count(self, query_filter: models.Filter | None = None) -> int:
        """Points in the collection (matching ``query_filter`` when given)."""
        return Lifecycle(self.parts).count(query_filter)

    def get(self, ids: Iterable[str | int]) -> list[Document]:
        """The stored documents with these (caller's) ids, in the order asked."""
        return Lifecycle(self.parts).get(ids)

    def find(self, query_filter: models.Filter | None = None, limit: int | None = None
             ) -> list[Document]:
        """The stored documents matching ``query_filter`` (all when None), up to ``limit``."""
        return Lifecycle(self.parts).find(query_filter, limit)

    def delete(self, where: Iterable[str | int] | models.Filter) -> int:
        """Delete documents by the caller's ids or by a filter; returns how many were."""
        return Lifecycle(self.parts).delete(where)

    def set_metadata(self, where: Iterable[str | int] | models.Filter,
                     values: dict[str, object]) -> int:
        """Merge ``values`` into the metadata of documents chosen by ids or a filter (nothing
        re-embedded); returns how many matched."""
        return Lifecycle(self.parts).set_metadata(where, values)

    def optimize(self) -> None:
        """Build the HNSW index after a bulk ingest (a no-op where the engine does it itself)."""
        self.parts.call(lambda: self.engine.optimize(self.name), f"optimizing {self.name!r}")

    def index_metadata(self, key: str, kind: str = "keyword") -> None:
        """Index a metadata field for filtering (``metadata.<key>``); kind: keyword, integer,
        float, bool, text, datetime, uuid or geo."""
        if kind not in PAYLOAD_INDEX_KINDS:
            raise InputError(f"index kind {kind!r} is not one of {', '.join(PAYLOAD_INDEX_KINDS)}")
        field = f"metadata.{key}"
        self.parts.call(lambda: self.engine.create_payload_index(self.name, field, kind),
                        f"indexing {field} of {self.name!r}")

    def add_sparse(self, settings: Bm25Settings | None = None,
                   on_progress: Callable[[int], None] | None = None) -> int:
        """Give a dense-only collection BM25 sparse vectors from its stored text; see
        `Lifecycle.add_sparse`. Returns the number of points encoded."""
        done, encoder = Lifecycle(self.parts).add_sparse(settings, on_progress)
        self.parts = replace(self.parts, sparse=encoder)
        return done

    def reembed(
        self, model: str | Embedder, *, to_collection: str | None = None, swap: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> ReembedReport:
        """Rebuild this collection with another model from its stored text, into a new
        collection of the same store; ``swap`` then makes it answer under this name (and
        this object then answers with the new model). See `minilm_qdrant.collection.reembed`."""
        embedder = model if isinstance(model, Embedder) else Embedder(model, backend=self.backend)
        report = reembed(self.parts, embedder, to_collection=to_collection,
                         on_progress=on_progress)
        if swap:
            self.swap(report.target)
            report = replace(report, swapped=True)
        return report

    def swap(self, other: str) -> None:
        """Make collection ``other`` answer under this name (embedded store: the two exchange
        names, so the old points stay under ``other``; server: this name becomes an alias of
        ``other``, the old collection deleted). This object then uses ``other``'s model."""
        parts = self.parts
        parts.call(lambda: parts.engine.swap(parts.name, other),
                   f"swapping {parts.name!r} and {other!r}")
        self.parts = open_parts(  # validated again, as on opening: never the old model's
            parts.engine, parts.name, parts.where, None, options=CollectionOptions(),
            create=False, scope=parts.scope, all_tenants=parts.scope.everyone,
            backend=self.backend, retry_policy=parts.retry_policy, batch_size=parts.batch_size)
