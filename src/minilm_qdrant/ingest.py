"""Ingest: documents -> checked, bounded batches -> dense + BM25 vectors -> acknowledged writes.

Embedding of the next batch overlaps the write of this one (`pipeline.staged`); each batch is
acknowledged before it counts; a batch that fails for good stops the ingest with a report of
what was and was not written.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from minilm_qdrant.batching import (
    Refused,
    bounded,
    check_vectors,
    estimated_bytes,
    label,
    preview,
    problem,
)
from minilm_qdrant.diskspace import room_for
from minilm_qdrant.documents import HASH_KEY, Document, point_id
from minilm_qdrant.engines import Sparse
from minilm_qdrant.errors import (
    CollectionMismatch,
    IngestError,
    InputError,
    MiniLMQdrantError,
    MissingDependency,
    StoreCorrupt,
)
from minilm_qdrant.pipeline import StageError, staged

if TYPE_CHECKING:
    from minilm_qdrant.collection import Collection


@dataclass
class UpsertReport:
    """What an ingest did. ``ok`` only when every document given was written."""

    written: int = 0
    unchanged: int = 0
    """Documents already stored with the same embedded text, model and payload (skipped:
    nothing embedded, nothing written)."""
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


Pair = tuple[Document, dict[str, Any]]
"""A document and its payload (hash of what is embedded included), computed once."""
Staged = tuple[list[Pair], "np.ndarray | None", "list[Sparse] | None", list[Pair]]
"""What the embedding stage hands on: documents to write with their dense and sparse
vectors, and documents whose metadata alone changed."""
MIN_AGREEMENT = 0.98
"""Cosine under which given vectors are taken for another model's (torch, ONNX and int8
vectors of one model agree to >= 0.99; another model's share no such space)."""


def ingest(
    col: Collection, documents: Iterable[Document], *,
    on_progress: Callable[[int], None] | None = None, optimize: bool = True,
    vectors: Mapping[str | int, Sequence[float]] | None = None,
    embedded_text: Callable[[Document], str] | None = None,
    skip_unchanged: bool = True,
) -> UpsertReport:
    """Embed and write ``documents`` into ``col`` in bounded batches.

    Each point records a hash of what was embedded (model fingerprint and text). With
    ``skip_unchanged`` (default) the ids of each batch are looked up first (one request, no
    vectors): documents stored with the same hash and payload are skipped (counted as
    ``unchanged``), those whose metadata alone changed get their payload rewritten without
    re-embedding, the rest are embedded. So a rerun after an interruption embeds only what
    is missing; points written before hashes existed are embedded once more.

    ``vectors`` (by the documents' ids) are used instead of embedding, once the first one
    is checked against the collection's model (on ``embedded_text(doc)``, default the text):
    vectors of another model raise `CollectionMismatch` before anything is written.
    With ``optimize`` (default) the engine then builds its search index (HNSW) where it
    does not do so on its own (the embedded store), so search is not a full scan.
    """
    room = room_for(col.engine, col.name, col.embedder.dim)  # free space (embedded store)
    if room:
        room.check_documents(documents, col.count)  # a list: refused before any write
    report = UpsertReport()
    start = time.monotonic()
    seen: set[str] = set()
    batch: list[Document] = []
    given = None if vectors is None else {point_id(k): v for k, v in vectors.items()}
    checked = given is None
    model = json.dumps(col.embedder.fingerprint, sort_keys=True)
    text_of = embedded_text or (lambda d: d.text)
    engine_lock = threading.Lock()  # the stage thread reads while this one writes

    def payload(doc: Document) -> dict[str, Any]:
        digest = hashlib.sha256(f"{model}\n{text_of(doc)}".encode("utf-8", "surrogatepass"))
        return {**doc.payload(), HASH_KEY: digest.hexdigest()[:32]}

    def triage(pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
        """(to embed, metadata-only changes); unchanged documents are counted and dropped."""
        if not skip_unchanged:
            return pairs, []
        ids = [d.point_id for d, _ in pairs]
        with engine_lock:
            stored = {p.id: p.payload for p in col._call(
                lambda: col.engine.retrieve(col.name, ids), f"reading {col.name!r}")}
        embed: list[Pair] = []
        relabel: list[Pair] = []
        for doc, now in pairs:
            before = stored.get(doc.point_id)
            if before is None or before.get(HASH_KEY) != now[HASH_KEY]:
                embed.append((doc, now))
            elif before != now:
                relabel.append((doc, now))
            else:
                report.unchanged += 1
        return embed, relabel

    def encode(docs: list[Document]) -> np.ndarray:
        nonlocal checked
        if given is None:
            encoded = col.embedder.encode_documents([d.text for d in docs], warn=False)
            report.truncated += encoded.truncated
            report.tokens += encoded.tokens
            report.padded_tokens += encoded.padded
            return encoded.vectors
        missing = [d.id for d in docs if d.point_id not in given]
        if missing:
            raise InputError(f"no vector given for documents {preview(missing)}")
        rows = np.stack([np.asarray(given[d.point_id], dtype=np.float32) for d in docs])
        if not checked:  # one vector, in the first batch
            _agree(col, docs[0], rows[0], embedded_text)
            checked = True
        return rows

    def embed(batch: list[Document]) -> Staged:
        unique = {doc.point_id: doc for doc in batch}  # last one wins
        report.duplicates += len(batch) - len(unique)
        report.duplicates += sum(pid in seen for pid in unique)
        seen.update(unique)
        pairs, relabel = triage([(d, payload(d)) for d in unique.values()])
        if not pairs:
            return pairs, None, None, relabel
        docs = [d for d, _ in pairs]
        dense = encode(docs)
        check_vectors(dense, docs, col.embedder.dim)
        sparse: list[Sparse] | None = None
        if col.sparse:
            sparse = list(col.sparse.encode_documents([d.text for d in docs]))
        return pairs, dense, sparse, relabel  # dense and sparse written together, never apart

    stages = staged(col._batches(documents), embed)
    try:
        for batch, (pairs, dense, sparse, relabel) in stages:
            if pairs and dense is not None:
                ids = [d.point_id for d, _ in pairs]
                payloads = [p for _, p in pairs]
                if room:  # a stream: stop between batches while the store can still close
                    room.check_batch(payloads, sparse)
                with engine_lock:
                    col._call(functools.partial(
                        col.engine.upsert, col.name, ids, dense, payloads, sparse),
                        f"writing {len(ids)} points to {col.name!r}", report)
            for doc, new in relabel:  # metadata changed, text not: no re-embedding
                with engine_lock:
                    col._call(functools.partial(
                        col.engine.set_payload, col.name, new, None, ids=[doc.point_id]),
                        f"updating {doc.id!r} in {col.name!r}", report)
            report.written += len(pairs) + len(relabel)
            written, batch = len(batch), []
            if on_progress:
                on_progress(written)
    except (MiniLMQdrantError, StageError) as raised:
        exc: BaseException | None = raised
        if isinstance(raised, StageError):  # failed in the stage thread
            exc, batch = raised.__cause__, raised.item or []  # type: ignore[assignment]
            if not isinstance(exc, MiniLMQdrantError):
                raise exc from None  # type: ignore[misc]
        if isinstance(exc, (StoreCorrupt, MissingDependency)):  # a rerun cannot help them:
            raise exc from None  # their own message says what can
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
    finally:  # now, not when a traceback lets go of it: the stage thread stops before we go on
        stages.close()
    if optimize and report.written:
        col.optimize()
    report.seconds = time.monotonic() - start
    return report


def _agree(col: Collection, doc: Document, given: np.ndarray,
           embedded_text: Callable[[Document], str] | None) -> None:
    """Refuse vectors that the collection's model did not make (one is re-embedded)."""
    if given.shape != (col.embedder.dim,):
        return  # check_vectors names the wrong shape
    ours = col.embedder.embed_documents([(embedded_text or (lambda d: d.text))(doc)],
                                        warn=False)[0]
    cosine = float(ours @ given / (np.linalg.norm(ours) * np.linalg.norm(given) or 1.0))
    if cosine < MIN_AGREEMENT:
        raise CollectionMismatch(
            f"the vector given for document {doc.id!r} is not {col.embedder.spec.name}'s "
            f"(cosine {cosine:.3f} to it): collection {col.name!r} holds that model's vectors "
            "only; embed with it (or let the collection embed)"
        )


def batches(
    documents: Iterable[Document], dim: int, max_count: int, max_bytes: int, sparse: bool
) -> Iterator[list[Document]]:
    """Batches bounded by count and estimated request bytes, in input order.

    A document that cannot be sent (not a `Document`, empty text, too large for one
    request) is refused before sending; the documents before it are yielded first.
    """

    def cost(doc: object) -> int:
        why = problem(doc, dim, max_bytes, sparse)
        if why:
            raise Refused(why, doc)
        return estimated_bytes(doc, dim, sparse)  # type: ignore[arg-type]

    return bounded(documents, cost, max_count, max_bytes)
