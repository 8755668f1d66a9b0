"""`Collection`: a Qdrant collection sized, scored and fingerprinted for one embedder.

It creates or validates the collection (models are never mixed in one), ingests documents in
count- and byte-bounded batches with retries, and searches. It does not know which engine it
drives: a Qdrant server or cluster, qdrant-client's local mode, or an embedded shard.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from qdrant_client import QdrantClient

from minilm_qdrant import retry
from minilm_qdrant.batching import (
    MAX_BATCH_BYTES,
    Refused,
    bounded,
    check_vectors,
    estimated_bytes,
    label,
    preview,
    problem,
)
from minilm_qdrant.documents import Document, Hit
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import CollectionOptions, Engine
from minilm_qdrant.engines.open import open_engine
from minilm_qdrant.errors import (
    CollectionMismatch,
    CollectionNotFound,
    IngestError,
    InputError,
    MiniLMQdrantError,
)
from minilm_qdrant.models import DEFAULT_MODEL
from minilm_qdrant.pipeline import StageError, staged

FINGERPRINT_KEY = "minilm_qdrant_fingerprint"
DEFAULT_COLLECTION = "documents"
PAYLOAD_INDEX_KINDS = ("keyword", "integer", "float", "bool", "text", "datetime", "uuid", "geo")


@dataclass
class UpsertReport:
    """What an ingest did. ``ok`` only when every document given was written."""

    written: int = 0
    failed: int = 0
    retries: int = 0
    duplicates: int = 0
    """Documents whose id appeared again later in the same ingest (the last one wins)."""
    truncated: int = 0
    tokens: int = 0
    """Word pieces embedded; with ``padded_tokens``, the padding waste of the batches."""
    padded_tokens: int = 0
    failed_ids: list[str | int] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.failed == 0

    @property
    def padding_waste(self) -> float:
        """Share of computed tokens that were padding (batches are sorted by length)."""
        return 1 - self.tokens / self.padded_tokens if self.padded_tokens else 0.0


class Collection:
    """One collection for one embedder.

    Args:
        name: collection name.
        embedder: the embedder; default: the model recorded in an existing collection's
            fingerprint, else the default model.
        path / url / api_key / client / engine: where the collection lives (one of them);
            default an in-memory store. ``path=DIR`` is the embedded Qdrant Edge store (or
            qdrant-client local mode where DIR already holds one); ``path=":memory:"`` works.
        options: pass-through settings used when the collection is created.
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
        backend: str = "torch",
    ) -> None:
        if batch_size < 1 or max_batch_bytes < 1:
            raise ValueError("batch_size and max_batch_bytes must be positive")
        self.name = name
        self.batch_size = batch_size
        self.max_batch_bytes = max_batch_bytes
        self.retry_policy = retry_policy or retry.RetryPolicy()
        self.where = _redact(url) if url else path or ("client" if client else ":memory:")
        owned = engine is None and client is None  # a caller's client or engine stays open
        self.engine = engine or open_engine(
            path=path, url=url, api_key=api_key, client=client, allow_insecure=allow_insecure
        )
        self.backend = backend
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

    def _call(self, fn: Callable[[], Any], what: str, report: UpsertReport | None = None) -> Any:
        def counted(_: BaseException) -> None:
            if report is not None:
                report.retries += 1

        return retry.call(fn, self.retry_policy, what=what, on_retry=counted)

    def _open(
        self, embedder: Embedder | None, options: CollectionOptions, create: bool
    ) -> Embedder:
        info = self._call(lambda: self.engine.info(self.name), f"reading collection {self.name!r}")
        if info is None:
            if not create:
                raise CollectionNotFound(
                    f"Collection {self.name!r} does not exist at {self.where}; index documents "
                    "into it first (minilm-qdrant index FILE --collection NAME)."
                )
            embedder = embedder or Embedder(DEFAULT_MODEL, backend=self.backend)
            spec = embedder.spec
            self._call(
                lambda: self.engine.create(
                    self.name, spec.dim, spec.distance, {FINGERPRINT_KEY: spec.fingerprint()},
                    options,
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
        if embedder is None:
            embedder = Embedder(
                stored["model"], pooling=stored["pooling"], normalize=stored["normalize"],
                backend=self.backend,
            )
        mine = embedder.fingerprint
        theirs = {**stored, "dim": info.size, "distance": info.distance}
        if theirs != mine or stored != mine:
            raise CollectionMismatch(
                f"Collection {self.name!r} holds vectors of {_describe(stored)} "
                f"(size {info.size}, distance {info.distance}); this embedder makes "
                f"{_describe(mine)}. Models are never mixed in one collection: search with the "
                "collection's own model (omit --model) or use another collection."
            )
        return embedder

    def upsert(
        self,
        documents: Iterable[Document],
        *,
        on_progress: Callable[[int], None] | None = None,
        optimize: bool = True,
    ) -> UpsertReport:
        """Embed and write documents in bounded batches, each acknowledged before it counts.

        With ``optimize`` (default) the engine then builds its search index (HNSW) where it
        does not do so on its own (the embedded store), so search is not a full scan.

        Raises `IngestError` (carrying the report) when a batch fails for good: the report
        says how many were written and which ids were not. Rerunning the same ingest completes
        it without duplicates, as point ids are deterministic.
        """
        report = UpsertReport()
        start = time.monotonic()
        seen: set[str] = set()
        batch: list[Document] = []

        def embed(batch: list[Document]) -> tuple[list[Document], np.ndarray]:
            unique = {doc.point_id: doc for doc in batch}  # last one wins
            report.duplicates += len(batch) - len(unique)
            report.duplicates += sum(pid in seen for pid in unique)
            seen.update(unique)
            docs = list(unique.values())
            encoded = self.embedder.encode_documents([d.text for d in docs], warn=False)
            report.truncated += encoded.truncated
            report.tokens += encoded.tokens
            report.padded_tokens += encoded.padded
            check_vectors(encoded.vectors, docs, self.embedder.dim)
            return docs, encoded.vectors

        try:
            # embedding of the next batch overlaps the write of this one (pipeline.py)
            for batch, (docs, vectors) in staged(self._batches(documents), embed):
                ids = [d.point_id for d in docs]
                payloads = [_payload(d) for d in docs]
                self._call(
                    functools.partial(self.engine.upsert, self.name, ids, vectors, payloads),
                    f"writing {len(docs)} points to {self.name!r}",
                    report,
                )
                report.written += len(docs)
                written, batch = len(batch), []
                if on_progress:
                    on_progress(written)
        except (MiniLMQdrantError, StageError) as raised:
            exc: BaseException | None = raised
            if isinstance(raised, StageError):  # failed in the stage thread
                exc, batch = raised.__cause__, raised.item or []  # type: ignore[assignment]
                if not isinstance(exc, MiniLMQdrantError):
                    raise exc from None  # type: ignore[misc]
            failed = [label(d) for d in batch]
            if isinstance(exc, Refused):
                failed.append(label(exc.document))
            report.failed += len(failed)
            report.failed_ids.extend(failed)
            report.seconds = time.monotonic() - start
            raise IngestError(
                f"Ingest stopped: {report.written} documents written; not written: "
                f"{preview(failed) or 'the document at fault'} and any later documents. "
                f"Cause: {exc} "
                "Rerun the same ingest to complete it (no duplicates).",
                report,
            ) from exc
        if optimize and report.written:
            self.optimize()
        report.seconds = time.monotonic() - start
        return report

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

    def _batches(self, documents: Iterable[Document]) -> Iterator[list[Document]]:
        """Batches bounded by count and estimated request bytes, in input order.

        A document that cannot be sent (not a `Document`, empty text, too large for one
        request) is refused before sending; the documents before it are yielded first.
        """
        dim, max_bytes = self.embedder.dim, self.max_batch_bytes

        def cost(doc: object) -> int:
            why = problem(doc, dim, max_bytes)
            if why:
                raise Refused(why, doc)
            return estimated_bytes(doc, dim)  # type: ignore[arg-type]

        return bounded(documents, cost, self.batch_size, max_bytes)

    def search(
        self, query: str, k: int = 10, *, query_filter: Any | None = None, exact: bool = False,
        hnsw_ef: int | None = None,
    ) -> list[Hit]:
        """The k documents most similar to ``query``, best first (higher score = closer).

        ``exact`` scans every vector; ``hnsw_ef`` widens the HNSW search (recall vs speed).
        """
        if not isinstance(query, str) or not query.strip():
            raise InputError("the search query is empty")
        return self.search_vector(
            self.embedder.embed_query(query), k, query_filter=query_filter, exact=exact,
            hnsw_ef=hnsw_ef,
        )

    def search_vector(
        self, vector: np.ndarray, k: int = 10, *, query_filter: Any | None = None,
        exact: bool = False, hnsw_ef: int | None = None,
    ) -> list[Hit]:
        """Search with an already embedded query vector."""
        if k < 1:
            raise InputError(f"k must be >= 1, got {k}")
        points = self._call(
            lambda: self.engine.search(self.name, vector, k, query_filter, exact, hnsw_ef),
            f"searching {self.name!r}",
        )
        return [
            Hit(
                id=p.payload.get("doc_id") if p.payload.get("doc_id") is not None else p.id,
                score=float(p.score or 0.0),
                text=p.payload.get("text", ""),
                metadata=p.payload.get("metadata") or {},
            )
            for p in points
        ]

    def count(self) -> int:
        return int(self._call(lambda: self.engine.count(self.name), f"counting {self.name!r}"))

    def delete(self, ids: Iterable[str | int]) -> None:
        """Delete documents by the caller's ids."""
        point_ids = [Document(text="", id=i).point_id for i in ids]
        self._call(lambda: self.engine.delete(self.name, point_ids), f"deleting from {self.name!r}")


def _redact(url: str) -> str:
    """The URL without credentials or query (where users sometimes put keys)."""
    if "://" not in url:
        return url.split("?")[0].rpartition("@")[2]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))


def _payload(doc: Document) -> dict[str, Any]:
    return {"text": doc.text, "doc_id": doc.id, "metadata": doc.metadata}


def _describe(fp: dict[str, Any]) -> str:
    return (
        f"model={fp.get('model')} dim={fp.get('dim')} pooling={fp.get('pooling')} "
        f"normalize={fp.get('normalize')} distance={fp.get('distance')}"
    )
