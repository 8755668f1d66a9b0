"""`Collection`: a Qdrant collection sized, scored and fingerprinted for one embedder.

It creates or validates the collection (models are never mixed in one), ingests documents in
count- and byte-bounded batches with retries (dense vectors and BM25 sparse vectors in the same
write), searches (dense, sparse, or hybrid fused in the engine; MMR), and gets, deletes and
updates documents by the caller's ids or by filter, each confined to the handle's tenant where
the collection is tenanted. It does not know which engine it drives: a Qdrant server or cluster,
qdrant-client's local mode, or an embedded shard.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from qdrant_client import QdrantClient

from minilm_qdrant import retry
from minilm_qdrant.batching import MAX_BATCH_BYTES
from minilm_qdrant.documents import Document
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import (
    CollectionOptions,
    Engine,
    Sparse,
)
from minilm_qdrant.engines.open import open_engine
from minilm_qdrant.errors import CollectionMismatch, CollectionNotFound, InputError
from minilm_qdrant.fingerprint import FINGERPRINT_KEY, Fingerprint, describe
from minilm_qdrant.ingest import UpsertReport, WritePath
from minilm_qdrant.lifecycle import Lifecycle
from minilm_qdrant.models import DEFAULT_MODEL
from minilm_qdrant.searching import Searching
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings
from minilm_qdrant.tenancy import TENANT_KEY, Scope, check_tenant, tenanted_options
from minilm_qdrant.windows import Windows

if TYPE_CHECKING:
    from minilm_qdrant.reembed import ReembedReport

__all__ = ["DEFAULT_COLLECTION", "FINGERPRINT_KEY", "Collection", "UpsertReport"]
DEFAULT_COLLECTION = "documents"
PAYLOAD_INDEX_KINDS = ("keyword", "integer", "float", "bool", "text", "datetime", "uuid", "geo")


class Collection(Lifecycle, Searching):
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
        batch_size / max_batch_bytes: ingest batches are bounded by both (batches of
            several points aim at 4 MiB; a long document's point goes alone, up to
            ``max_batch_bytes``; default: a server's request bound, 30 MiB, and none for an
            engine in this process, Edge or local mode, where every window of a text of any
            length is stored); a batch is also the window in which texts are sorted by
            length for embedding.
        retry_policy: how transient failures are retried.
        backend: the backend of the embedder built here (none given): ``torch``, ``onnx``...
        tenant: confine every operation to this tenant (a new collection is made tenanted;
            an existing one must be). See `minilm_qdrant.tenancy` and `tenant()`.
        all_tenants: read every tenant's documents and write none (an administrator's
            explicit choice; what ``reembed`` needs); an untenanted collection opens as it is,
            a new one is made tenanted.
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
        self.scope = Scope(tenant is not None or all_tenants,
                           None if tenant is None else check_tenant(tenant))
        """The tenant this handle is confined to (`minilm_qdrant.tenancy`)."""
        self._view, self._all_tenants = False, all_tenants
        self.name = name
        self.batch_size = batch_size
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
        self.max_batch_bytes = max_batch_bytes if max_batch_bytes is not None else \
            None if self.engine.in_process else MAX_BATCH_BYTES
        self.backend = backend
        self.sparse: Bm25Encoder | None = None
        """The BM25 encoder of a collection with sparse vectors (settings from its
        fingerprint), else None."""
        self.origins = True
        """Folder syncs mark the documents they write (`documents.ORIGIN_KEY`); False for a
        collection made before the mark (its synced documents known by their metadata)."""
        self.windows: Windows | None = None
        """How texts are cut into windows (settings from the fingerprint); None for a
        collection of one vector a text (made before windows: texts truncated)."""
        try:
            self.embedder = self._open(embedder, options or CollectionOptions(), create)
        except BaseException:
            if owned:
                self.engine.close(failed=True)
            raise

    def __repr__(self) -> str:
        tenant = f", tenant={self.scope.tenant!r}" if self.scope.tenant is not None else ""
        return (f"Collection({self.name!r}, where={self.where!r}, embedder={self.embedder!r}"
                f"{tenant})")

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
        view = copy.copy(self)
        view.scope, view._view = Scope(True, check_tenant(name)), True
        return view

    def _call(self, fn: Callable[[], Any], what: str) -> Any:
        return retry.call(fn, self.retry_policy, what=what)

    def _open(
        self, embedder: Embedder | None, options: CollectionOptions, create: bool
    ) -> Embedder:
        """Validate the collection against its fingerprint (or create it, fingerprinted) and
        take its BM25 and window settings; returns the embedder that matches it."""
        given = embedder is not None
        info = self._call(lambda: self.engine.info(self.name), f"reading collection {self.name!r}")
        if info is None:
            if not create:
                raise CollectionNotFound(
                    f"Collection {self.name!r} does not exist at {self.where}; index documents "
                    "into it first (minilm-qdrant index FILE --collection NAME)."
                )
            embedder = embedder or Embedder(DEFAULT_MODEL, backend=self.backend)
            if options.sparse is not None:
                self.sparse = Bm25Encoder(options.sparse)  # bad settings fail before creating
            if options.windows is not None:  # the model's files are found before creating
                self.windows = embedder.windows(options.windows)
            made = Fingerprint(embedder.fingerprint, options.sparse,
                               self.windows.settings if self.windows else None,
                               self.scope.tenanted, origins=True)
            self.origins = True
            if self.scope.tenanted:
                options = tenanted_options(options)
            spec = embedder.spec
            self._call(
                lambda: self.engine.create(
                    self.name, spec.dim, spec.distance, made.as_metadata(), options),
                f"creating collection {self.name!r}",
            )
            if self.scope.tenanted:  # Qdrant's tenant index: a tenant's points kept together
                self._call(lambda: self.engine.create_payload_index(
                    self.name, TENANT_KEY, "tenant"), f"indexing tenants of {self.name!r}")
            return embedder
        stored = Fingerprint.read(info, self.name, self.where)
        self.origins = stored.origins
        if stored.sparse is not None:
            self.sparse = Bm25Encoder(stored.sparse)
        if embedder is None:
            embedder = Embedder(
                stored.model["model"], pooling=stored.model["pooling"],
                normalize=stored.model["normalize"], backend=self.backend,
            )
        mine = embedder.fingerprint
        other_model = stored.mismatch(info, mine)
        if other_model and stored.tenants == self.scope.tenanted and given \
                and create and not self._call(
                lambda: self.engine.count(self.name), f"counting {self.name!r}"):
            # empty: nothing was stored with its model, so it takes the one given now (a
            # first run that named a model it did not have must not leave a trap behind)
            self._call(lambda: self.engine.drop(self.name), f"dropping {self.name!r}")
            self.sparse = self.windows = None
            return self._open(embedder, options, create)
        if other_model:
            raise CollectionMismatch(
                f"Collection {self.name!r} holds vectors of {describe(stored.model)} "
                f"(size {info.size}, distance {info.distance}); this embedder makes "
                f"{describe(mine)}. Models are never mixed in one collection: search with the "
                "collection's own model (omit --model) or use another collection."
            )
        if self.scope.tenant is None and self._all_tenants:  # every tenant, or no tenants
            self.scope = Scope(stored.tenants, None)
        if stored.tenants != self.scope.tenanted:
            raise CollectionMismatch(
                f"Collection {self.name!r} at {self.where} is tenanted: open it for one tenant "
                "(tenant=NAME, --tenant NAME), or with all_tenants=True to read every tenant's."
                if stored.tenants else
                f"Collection {self.name!r} at {self.where} is not tenanted (its documents "
                "belong to no tenant): open it without a tenant, or use another collection.")
        if stored.windows is not None:
            self.windows = embedder.windows(stored.windows)
        return embedder

    @property
    def windowed(self) -> bool:
        """Whether every window of a long text reaches a vector (else texts are truncated:
        a collection made before windows; ``reembed`` moves it)."""
        return self.windows is not None

    def writer(self) -> WritePath:
        """The write path of this collection, given everything it needs."""
        return WritePath(self.engine, self.name, self.embedder, self.sparse, self.windows,
                         self.batch_size, self.max_batch_bytes, self.retry_policy, self.scope)

    def upsert(
        self,
        documents: Iterable[Document],
        *,
        on_progress: Callable[[int], None] | None = None,
        optimize: bool = True,
        vectors: Mapping[str | int, Sequence[float]] | None = None,
        embedded_text: Callable[[Document], str] | None = None,
        skip_unchanged: bool = True,
        on_refused: Callable[[Document, str], None] | None = None,
    ) -> UpsertReport:
        """Embed and write documents in bounded batches, each acknowledged before it counts
        (dense and BM25 vectors of a point in one write); see `minilm_qdrant.ingest.ingest`.
        A document that cannot be stored (no text, bad metadata, over the request bound) stops
        the ingest, named, after what came before it; with ``on_refused`` it is handed to it
        with why, and the rest goes on (``--skip-invalid``).
        ``vectors`` (by document id) skips embedding for vectors a framework already made
        with this model (checked on one). Documents stored with the same embedded text and
        payload are skipped (``report.unchanged``) unless ``skip_unchanged=False``, so a rerun
        after an interruption embeds only what is missing.

        Raises `IngestError` (carrying the report) when a batch fails for good. Rerunning the
        same ingest completes it without duplicates, as point ids are deterministic.
        """
        return self.writer().write(documents, on_progress=on_progress, optimize=optimize,
                                   vectors=vectors, embedded_text=embedded_text,
                                   skip_unchanged=skip_unchanged, on_refused=on_refused)

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
        record = Fingerprint(self.embedder.fingerprint, encoder.settings,
                             self.windows.settings if self.windows else None, self.scope.tenanted,
                             self.origins)
        self._call(lambda: self.engine.set_metadata(self.name, record.as_metadata()),
                   f"updating the fingerprint of {self.name!r}")
        self.sparse = encoder
        return done


def _redact(url: str) -> str:
    """The URL without credentials or query (where users sometimes put keys)."""
    if "://" not in url:
        return url.split("?")[0].rpartition("@")[2]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))

