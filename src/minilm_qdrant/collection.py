"""`Collection`: a Qdrant collection sized, scored and fingerprinted for one embedder.

It creates or validates the collection (models are never mixed in one), ingests documents in
count- and byte-bounded batches with retries (dense vectors and BM25 sparse vectors in the same
write), searches (dense, sparse, or hybrid fused in the engine; MMR), and gets, deletes and
updates documents by the caller's ids or by filter. It does not know which engine it drives: a
Qdrant server or cluster, qdrant-client's local mode, or an embedded shard.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from qdrant_client import QdrantClient, models

from minilm_qdrant import retry
from minilm_qdrant.batching import MAX_BATCH_BYTES
from minilm_qdrant.documents import Document, Hit
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import (
    FUSIONS,
    MODES,
    CollectionOptions,
    Engine,
    Fusion,
    Mode,
    SearchRequest,
    Sparse,
    StoredPoint,
)
from minilm_qdrant.engines.open import open_engine
from minilm_qdrant.errors import CollectionMismatch, CollectionNotFound, InputError
from minilm_qdrant.ingest import UpsertReport, WritePath
from minilm_qdrant.lifecycle import Lifecycle
from minilm_qdrant.models import DEFAULT_MODEL
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings
from minilm_qdrant.windows import SPANS_KEY, Windows, WindowSettings, best_window, passage

if TYPE_CHECKING:
    from minilm_qdrant.reembed import ReembedReport

__all__ = ["DEFAULT_COLLECTION", "FINGERPRINT_KEY", "Collection", "UpsertReport"]
FINGERPRINT_KEY = "minilm_qdrant_fingerprint"
DEFAULT_COLLECTION = "documents"
PAYLOAD_INDEX_KINDS = ("keyword", "integer", "float", "bool", "text", "datetime", "uuid", "geo")


class Collection(Lifecycle):
    """One collection for one embedder.

    Args:
        name: collection name.
        embedder: the embedder; default: the model recorded in an existing collection's
            fingerprint, else the default model.
        path / url / api_key / client / engine: where the collection lives (one of them);
            default an in-memory store. ``path=DIR`` is the embedded Qdrant Edge store (or
            qdrant-client local mode where DIR already holds one); ``path=":memory:"`` works.
        options: settings used when the collection is created (scale; ``sparse``: the BM25
            settings, default English, or None for a dense-only collection).
        create: create the collection when missing (else `CollectionNotFound`).
        batch_size / max_batch_bytes: ingest batches are bounded by both; a batch is also
            the window in which texts are sorted by length for embedding.
        retry_policy: how transient failures are retried.
        backend: the backend of the embedder built here (none given): ``torch``, ``onnx``...
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
        options: CollectionOptions | None = None,
        create: bool = True,
        batch_size: int = 256,
        max_batch_bytes: int = MAX_BATCH_BYTES,
        retry_policy: retry.RetryPolicy | None = None,
        allow_insecure: bool = False,
        backend: str = "auto",
    ) -> None:
        if batch_size < 1 or max_batch_bytes < 1:
            raise ValueError("batch_size and max_batch_bytes must be positive")
        self.name = name
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.retry_policy = retry_policy or retry.RetryPolicy()
        self.where = _redact(url) if url else path or ("client" if client else ":memory:")
        owned = engine is None and client is None  # a caller's client or engine stays open
        try:
            self.engine = engine or open_engine(
                path=path, url=url, api_key=api_key, client=client,
                allow_insecure=allow_insecure, create=create,
            )
        except CollectionNotFound as exc:  # no store there at all (a read creates none)
            raise CollectionNotFound(f"Collection {name!r} does not exist: {exc}") from None
        self.backend = backend
        self.sparse: Bm25Encoder | None = None
        """The BM25 encoder of a collection with sparse vectors (settings from its
        fingerprint), else None."""
        self.windows: Windows | None = None
        """How texts are cut into windows (settings from the fingerprint); None for a
        collection of one vector a text (made before windows: texts truncated)."""
        try:
            self.embedder = self._open(embedder, options or CollectionOptions(), create)
        except BaseException:
            if owned:
                self.engine.close()
            raise

    def __repr__(self) -> str:
        return f"Collection({self.name!r}, where={self.where!r}, embedder={self.embedder!r})"

    def __enter__(self) -> Collection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release the store (and its lock, for embedded stores)."""
        self.engine.close()

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        return retry.call(fn, self.retry_policy, what=what)

    def _open(
        self, embedder: Embedder | None, options: CollectionOptions, create: bool
    ) -> Embedder:
        given = embedder is not None
        info = self._call(lambda: self.engine.info(self.name), f"reading collection {self.name!r}")
        if info is None:
            if not create:
                raise CollectionNotFound(
                    f"Collection {self.name!r} does not exist at {self.where}; index documents "
                    "into it first (minilm-qdrant index FILE --collection NAME)."
                )
            embedder = embedder or Embedder(DEFAULT_MODEL, backend=self.backend)
            spec = embedder.spec
            fingerprint = spec.fingerprint()
            if options.sparse is not None:
                self.sparse = Bm25Encoder(options.sparse)  # bad settings fail before creating
                fingerprint["sparse"] = options.sparse.as_dict()
            if options.windows is not None:  # the model's files are found before creating
                self.windows = embedder.windows(options.windows)
                fingerprint["windows"] = self.windows.settings.as_dict()
            self._call(
                lambda: self.engine.create(
                    self.name, spec.dim, spec.distance, {FINGERPRINT_KEY: fingerprint}, options,
                ),
                f"creating collection {self.name!r}",
            )
            return embedder
        stored = info.metadata.get(FINGERPRINT_KEY)
        if not isinstance(stored, dict):
            raise CollectionMismatch(
                f"Collection {self.name!r} at {self.where} was not made by minilm-qdrant (it has "
                f"no fingerprint; size={info.size}, distance={info.distance}), so its model is "
                "unknown; use another --collection name."
            )
        sparse, windows = stored.get("sparse"), stored.get("windows")
        stored = {k: v for k, v in stored.items() if k not in ("sparse", "windows")}
        if (windows is not None) != info.windows:
            raise CollectionMismatch(
                f"Collection {self.name!r} at {self.where} records windows {windows} but "
                f"{'has' if info.windows else 'has no'} window vectors: re-index it."
            )
        if sparse is not None:
            if not info.sparse:
                raise CollectionMismatch(
                    f"Collection {self.name!r} at {self.where} records BM25 settings but has no "
                    "'bm25' sparse vector; it was not made by this version: re-index it."
                )
            self.sparse = Bm25Encoder(Bm25Settings.from_dict(sparse))
        if embedder is None:
            embedder = Embedder(
                stored["model"], pooling=stored["pooling"], normalize=stored["normalize"],
                backend=self.backend,
            )
        mine = embedder.fingerprint
        theirs = {**stored, "dim": info.size, "distance": info.distance}
        if (theirs != mine or stored != mine) and given and create and not self._call(
                lambda: self.engine.count(self.name), f"counting {self.name!r}"):
            # empty: nothing was stored with its model, so it takes the one given now (a
            # first run that named a model it did not have must not leave a trap behind)
            self._call(lambda: self.engine.drop(self.name), f"dropping {self.name!r}")
            self.sparse = self.windows = None
            return self._open(embedder, options, create)
        if theirs != mine or stored != mine:
            raise CollectionMismatch(
                f"Collection {self.name!r} holds vectors of {_describe(stored)} "
                f"(size {info.size}, distance {info.distance}); this embedder makes "
                f"{_describe(mine)}. Models are never mixed in one collection: search with the "
                "collection's own model (omit --model) or use another collection."
            )
        if windows is not None:
            self.windows = embedder.windows(WindowSettings.from_dict(windows))
        return embedder

    @property
    def windowed(self) -> bool:
        """Whether every window of a long text reaches a vector (else texts are truncated:
        a collection made before windows; ``reembed`` moves it)."""
        return self.windows is not None

    def writer(self) -> WritePath:
        """The write path of this collection, given everything it needs."""
        return WritePath(self.engine, self.name, self.embedder, self.sparse, self.windows,
                         self.batch_size, self.max_batch_bytes, self.retry_policy)

    def upsert(
        self,
        documents: Iterable[Document],
        *,
        on_progress: Callable[[int], None] | None = None,
        optimize: bool = True,
        vectors: Mapping[str | int, Sequence[float]] | None = None,
        embedded_text: Callable[[Document], str] | None = None,
        skip_unchanged: bool = True,
    ) -> UpsertReport:
        """Embed and write documents in bounded batches, each acknowledged before it counts
        (dense and BM25 vectors of a point in one write); see `minilm_qdrant.ingest.ingest`.
        ``vectors`` (by document id) skips embedding for vectors a framework already made
        with this model (checked on one). Documents stored with the same embedded text and
        payload are skipped (``report.unchanged``) unless ``skip_unchanged=False``, so a rerun
        after an interruption embeds only what is missing.

        Raises `IngestError` (carrying the report) when a batch fails for good. Rerunning the
        same ingest completes it without duplicates, as point ids are deterministic.
        """
        return self.writer().write(documents, on_progress=on_progress, optimize=optimize,
                                   vectors=vectors, embedded_text=embedded_text,
                                   skip_unchanged=skip_unchanged)

    def optimize(self) -> None:
        """Build the HNSW index after a bulk ingest (a no-op where the engine does it itself)."""
        self._call(lambda: self.engine.optimize(self.name), f"optimizing {self.name!r}")

    def index_metadata(self, key: str, kind: str = "keyword") -> None:
        """Index a metadata field for filtering (``metadata.<key>``); kind: keyword, integer,
        float, bool, text, datetime, uuid or geo."""
        if kind not in PAYLOAD_INDEX_KINDS:
            raise InputError(f"index kind {kind!r} is not one of {', '.join(PAYLOAD_INDEX_KINDS)}")
        field = f"metadata.{key}"
        self._call(lambda: self.engine.create_payload_index(self.name, field, kind),
                   f"indexing {field} of {self.name!r}")

    @property
    def default_mode(self) -> Mode:
        """``hybrid`` where the collection has BM25 sparse vectors, else ``dense``."""
        return "hybrid" if self.sparse is not None else "dense"

    def search(
        self, query: str, k: int = 10, *, mode: Mode | None = None,
        query_filter: models.Filter | None = None, fusion: Fusion = "dbsf", prefetch: int = 100,
        diversity: float = 0.0, exact: bool = False, hnsw_ef: int | None = None,
    ) -> list[Hit]:
        """The k best documents for ``query``, best first (higher score = closer).

        ``mode``: ``hybrid`` (default where the collection has sparse vectors: dense and BM25
        candidates, ``prefetch`` from each, fused in the engine by ``dbsf`` or ``rrf``),
        ``dense`` or ``sparse``. ``diversity`` (0-1) re-ranks the candidates by MMR in the
        engine. ``query_filter`` applies to every stage. ``exact`` scans every dense vector;
        ``hnsw_ef`` widens the HNSW search (recall vs speed).
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError("the search query is empty")
        mode = self.resolve_mode(mode)
        dense = windows = None
        if mode != "sparse" or diversity:
            if self.windows is not None:  # a long query is cut like the documents
                windows = self.embedder.embed_query_windows(query, self.windows)
                dense = self.embedder.pooled(windows)
            else:
                dense = self.embedder.embed_query(query)
        sparse = self.sparse.encode_query(query) if self.sparse and mode != "dense" else None
        return self.search_vector(
            dense, k, sparse=sparse, mode=mode, query_filter=query_filter, fusion=fusion,
            prefetch=prefetch, diversity=diversity, exact=exact, hnsw_ef=hnsw_ef,
            windows=windows,
        )

    def search_vector(
        self, vector: np.ndarray | None, k: int = 10, *, sparse: Sparse | None = None,
        mode: Mode | None = None, query_filter: models.Filter | None = None,
        fusion: Fusion = "dbsf", prefetch: int = 100, diversity: float = 0.0,
        exact: bool = False, hnsw_ef: int | None = None, windows: np.ndarray | None = None,
        passages: int | None = None,
    ) -> list[Hit]:
        """Search with already encoded query vectors (dense and/or BM25 sparse; ``windows``:
        the query's window vectors, default the one dense vector).

        ``mode`` defaults to what is given: both -> hybrid, one -> that one. Each hit carries
        the passage that answered (the best window: by the dense query where there is one,
        else by BM25); with ``passages``, only the first that many hits do (their window
        vectors are read in a second request; reading every hit's costs ~0.5 ms a long hit).
        """
        if mode is None:
            mode = "dense" if sparse is None else "sparse" if vector is None else "hybrid"
        if self.windows is not None and vector is not None and windows is None:
            windows = np.asarray(vector, dtype=np.float32)[None, :]
        request = SearchRequest(
            k=k, mode=self.resolve_mode(mode), dense=vector, sparse=sparse, fusion=fusion,
            prefetch=prefetch, diversity=diversity, query_filter=query_filter, exact=exact,
            hnsw_ef=hnsw_ef, windows=windows if self.windows is not None else None,
            with_windows=self.windows is not None and vector is not None and passages is None,
        )
        _check(request)
        points = self._call(lambda: self.engine.search(self.name, request),
                            f"searching {self.name!r}")
        if passages is None:
            return [self._hit(p, windows, sparse) for p in points]
        first = points[:passages]
        if request.windows is not None:  # the window vectors of the long ones among them
            long = [p.id for p in first if len(p.payload.get(SPANS_KEY) or ()) > 1]
            read = {p.id: p.windows for p in self._call(
                lambda: self.engine.retrieve(self.name, long, windows=True),
                f"reading {self.name!r}")} if long else {}
            first = [replace(p, windows=read.get(p.id)) for p in first]
        return [self._hit(p, windows, sparse) for p in first] + [
            Hit.from_point(p.id, float(p.score or 0.0), p.payload) for p in points[passages:]]

    def _hit(self, point: StoredPoint, query: np.ndarray | None, sparse: Sparse | None) -> Hit:
        hit = Hit.from_point(point.id, float(point.score or 0.0), point.payload)
        spans = point.payload.get(SPANS_KEY)
        best = 0
        if spans and len(spans) > 1:
            if query is not None and point.windows is not None:
                best = best_window(query, point.windows)
            elif sparse is not None and self.sparse is not None:
                best = _by_terms(self.sparse, sparse, [hit.text[a:b] for a, b in spans])
        return replace(hit, passage=passage(hit.text, spans, best))

    def resolve_mode(self, mode: Mode | None) -> Mode:
        """``mode``, or the default; a mode this collection cannot run raises `InputError`."""
        if mode is None:
            return self.default_mode
        if mode not in MODES:
            raise InputError(f"search mode {mode!r} is not one of {', '.join(MODES)}")
        if mode != "dense" and self.sparse is None:
            raise InputError(
                f"Collection {self.name!r} at {self.where} has no BM25 sparse vectors (it was "
                f"made dense-only, or before hybrid search), so mode {mode!r} cannot run: search "
                "it with mode 'dense' (--mode dense); or add them from the stored text without "
                "re-embedding (minilm-qdrant add-sparse, Collection.add_sparse(); embedded "
                "store), or index the documents into a new collection, which gets them."
            )
        return mode

    def reembed(
        self, model: str | Embedder, *, to_collection: str | None = None, swap: bool = False,
        on_progress: Callable[[int], None] | None = None,
    ) -> ReembedReport:
        """Rebuild this collection with another model from its stored text, into a new
        collection of the same store; ``swap`` then makes it answer under this name (and
        this object then answers with the new model). See `minilm_qdrant.reembed`."""
        from minilm_qdrant.reembed import reembed

        embedder = model if isinstance(model, Embedder) else Embedder(model, backend=self.backend)
        return reembed(self, embedder, to_collection=to_collection, swap=swap,
                       on_progress=on_progress)

    def swap(self, other: str) -> None:
        """Make collection ``other`` answer under this name (embedded store: the two exchange
        names, so the old points stay under ``other``; server: this name becomes an alias of
        ``other``, the old collection deleted). This object then uses ``other``'s model."""
        self._call(lambda: self.engine.swap(self.name, other),
                   f"swapping {self.name!r} and {other!r}")
        self.sparse = None  # validated again, as on opening: never the old model's
        self.embedder = self._open(None, CollectionOptions(), create=False)

    def add_sparse(
        self, settings: Bm25Settings | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> int:
        """Give a dense-only collection BM25 sparse vectors, encoded from the text stored in
        its payloads (nothing is re-embedded), so that hybrid search works on it; returns the
        number of points encoded. Embedded store only (a server or local mode cannot add a
        vector to an existing collection: re-index there). A rerun after an interruption
        completes it; the fingerprint records the settings only once every point has them.
        """
        if self.sparse is not None:
            raise InputError(f"Collection {self.name!r} already has BM25 sparse vectors")
        encoder = Bm25Encoder(settings or Bm25Settings())
        self._call(lambda: self.engine.add_sparse(self.name), f"adding sparse to {self.name!r}")
        done = 0
        for page in self.engine.scroll(self.name, self.batch_size, with_vectors=False):
            ids = [p.id for p in page]
            vectors: list[Sparse] = list(
                encoder.encode_documents([str(p.payload.get("text", "")) for p in page]))
            self._call(lambda: self.engine.upsert_sparse(self.name, ids, vectors),  # noqa: B023
                       f"writing sparse vectors to {self.name!r}")
            done += len(ids)
            if on_progress:
                on_progress(len(ids))
        fingerprint = {**self.embedder.fingerprint, "sparse": encoder.settings.as_dict()}
        if self.windows is not None:  # what else the fingerprint records stays
            fingerprint["windows"] = self.windows.settings.as_dict()
        self._call(lambda: self.engine.set_metadata(self.name, {FINGERPRINT_KEY: fingerprint}),
                   f"updating the fingerprint of {self.name!r}")
        self.sparse = encoder
        return done


def _check(r: SearchRequest) -> None:
    if r.k < 1:
        raise InputError(f"k must be >= 1, got {r.k}")
    if r.fusion not in FUSIONS:
        raise InputError(f"fusion {r.fusion!r} is not one of {', '.join(FUSIONS)}")
    if r.prefetch < 1:
        raise InputError(f"prefetch must be >= 1, got {r.prefetch}")
    if not 0.0 <= r.diversity <= 1.0:
        raise InputError(f"diversity must be between 0 and 1, got {r.diversity}")


def _by_terms(encoder: Bm25Encoder, query: Sparse, texts: list[str]) -> int:
    """The text sharing the most BM25 weight with the query (the passage of a sparse hit)."""
    wanted = dict(zip(query.indices, query.values, strict=True))
    scores = [sum(wanted.get(i, 0.0) * v for i, v in zip(s.indices, s.values, strict=True))
              for s in encoder.encode_documents(texts)]
    return int(np.argmax(scores))


def _redact(url: str) -> str:
    """The URL without credentials or query (where users sometimes put keys)."""
    if "://" not in url:
        return url.split("?")[0].rpartition("@")[2]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _describe(fp: dict[str, Any]) -> str:
    return (
        f"model={fp.get('model')} dim={fp.get('dim')} pooling={fp.get('pooling')} "
        f"normalize={fp.get('normalize')} distance={fp.get('distance')}"
        + (f" weights={fp['weights']}" if fp.get("weights") else "")
    )
