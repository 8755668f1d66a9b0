"""The write path: documents -> checks -> windows -> vectors (+ BM25) -> bounded, retried,
acknowledged writes, with resume lookups. One room: `WritePath` receives what it needs (engine,
embedder, encoders, limits, retry policy) and never reaches back into its caller.

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
from typing import Any

import numpy as np

from minilm_qdrant import retry
from minilm_qdrant.batching import (
    BATCH_TARGET_BYTES,
    Refused,
    bounded,
    check_vectors,
    estimated_bytes,
    label,
    preview,
    problem,
    too_large,
)
from minilm_qdrant.diskspace import room_for
from minilm_qdrant.documents import HASH_KEY, ID_KEY, Document
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import Engine, Sparse
from minilm_qdrant.errors import (
    CollectionMismatch,
    IngestError,
    InputError,
    MiniLMQdrantError,
    MissingDependency,
    StoreCorrupt,
)
from minilm_qdrant.pipeline import StageError, staged
from minilm_qdrant.sparse import Bm25Encoder
from minilm_qdrant.tenancy import Scope
from minilm_qdrant.windows import CODES_KEY, SPANS_KEY, Span, Windows, window_codes


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
    """Texts cut to the model's limit (a collection without windows embeds only the first
    window of each text)."""
    windows: int = 0
    """Windows embedded (one per document that fits the model)."""
    windowed: int = 0
    """Documents embedded as more than one window."""
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


Item = tuple[Document, "list[Span] | None"]
"""A document and its windows (None: the collection stores one vector a text)."""
Pair = tuple[Document, dict[str, Any], "list[Span] | None"]
"""A document, its payload (hash of what is embedded included) and its windows."""
Vectors = tuple["np.ndarray", "list[np.ndarray] | None"]
"""Dense vectors (pooled where windowed) and each document's window vectors."""
Staged = tuple[list[Pair], "Vectors | None", "list[Sparse] | None", list[Pair]]
"""What the embedding stage hands on: documents to write with their dense, window and sparse
vectors, and documents whose metadata alone changed."""
MIN_AGREEMENT = 0.95
"""Cosine under which given vectors are taken for another model's. torch and ONNX vectors of
one model agree to >= 0.999; int8's quantisation is dynamic (scaled over the whole batch), so a
short text embedded in a padded batch and alone agree to ~0.978 (measured); another model's
vectors share no such space."""


@dataclass
class WritePath:
    """Writes documents into collection ``name`` of ``engine``: what the caller hands in is
    all it uses."""

    engine: Engine
    name: str
    embedder: Embedder
    sparse: Bm25Encoder | None
    windows: Windows | None
    batch_size: int
    max_batch_bytes: int | None
    """The request bound a document's point must fit (None: none; the engine takes requests
    in this process, so a long text's every window reaches it whatever its size)."""
    retry_policy: retry.RetryPolicy
    scope: Scope = field(default_factory=Scope)
    """The tenant every point is written for (ids namespaced, payload stamped)."""

    def call(self, fn: Callable[[], Any], what: str, report: UpsertReport | None = None) -> Any:
        def counted(_: BaseException) -> None:
            if report is not None:
                report.retries += 1

        return retry.call(fn, self.retry_policy, what=what, on_retry=counted)

    def items(self, documents: Iterable[Document],
              on_refused: Callable[[Document, str], None] | None = None
              ) -> Iterator[list[Item]]:
        """Checked documents with their windows, in batches bounded by count and bytes; a
        document that cannot be sent raises `Refused` after the batch before it (or, with
        ``on_refused``, is handed to it with why, and the rest goes on)."""
        dim, limit, sparse = self.embedder.dim, self.max_batch_bytes, self.sparse is not None

        def checked() -> Iterator[tuple[Item, int]]:
            for doc in documents:
                why = problem(doc, dim, limit, sparse)
                spans = None
                if not why:
                    spans = self.windows.cut([doc.text])[0] if self.windows else None
                    cost = estimated_bytes(doc, dim, sparse, len(spans) if spans else 0)
                    why = too_large(doc, cost, limit) if limit and cost > limit else None
                if why and on_refused is not None and isinstance(doc, Document):
                    on_refused(doc, why)
                    continue
                if why:
                    raise Refused(why, doc)
                yield (doc, spans), cost

        target = min(limit or BATCH_TARGET_BYTES, BATCH_TARGET_BYTES)
        batches = bounded(checked(), lambda pair: pair[1], self.batch_size,
                          target)  # a bigger point goes alone
        return ([item for item, _ in batch] for batch in batches)

    def write(
        self, documents: Iterable[Document], *,
        on_progress: Callable[[int], None] | None = None, optimize: bool = True,
        vectors: Mapping[str | int, Sequence[float]] | None = None,
        embedded_text: Callable[[Document], str] | None = None,
        skip_unchanged: bool = True,
        on_refused: Callable[[Document, str], None] | None = None,
    ) -> UpsertReport:
        """Embed and write ``documents`` in bounded batches (see `Collection.upsert`).

        Each point records a hash of what was embedded (model fingerprint, windows and text).
        With ``skip_unchanged`` the ids of each batch are looked up first (one request, no
        vectors): documents stored with the same hash and payload are skipped (counted as
        ``unchanged``), those whose metadata alone changed get their payload rewritten without
        re-embedding, the rest are embedded: a rerun after an interruption embeds only what is
        missing. ``vectors`` (by the documents' ids) are used instead of embedding documents
        that are one window, once the first is checked against the model; a longer document
        is embedded here window by window (a given vector saw only its first window).
        """
        engine, name, embedder = self.engine, self.name, self.embedder
        self.scope.writable()
        pid = self.scope.point_id
        room = room_for(engine, name, embedder.dim)  # free space (embedded store)
        if room:  # a list: refused before any write
            room.check_documents(documents, lambda: engine.count(name), self.windows is not None)
        report = UpsertReport()
        start = time.monotonic()
        seen: dict[str, str | int | None] = {}  # point id -> the caller's id written to it
        batch: list[Item] = []
        given = None if vectors is None else {self.scope.id_of(k): v for k, v in vectors.items()}
        checked = given is None
        identity = {**embedder.fingerprint}
        if self.windows:
            identity["windows"] = self.windows.settings.as_dict()
        model = json.dumps(identity, sort_keys=True)
        text_of = embedded_text or (lambda d: d.text)
        engine_lock = threading.Lock()  # the stage thread reads while this one writes

        def payload(doc: Document, spans: list[Span] | None) -> dict[str, Any]:
            digest = hashlib.sha256(f"{model}\n{text_of(doc)}".encode("utf-8", "surrogatepass"))
            extra = {SPANS_KEY: [list(s) for s in spans]} if spans and len(spans) > 1 else {}
            return self.scope.stamp({**doc.payload(), **extra, HASH_KEY: digest.hexdigest()[:32]})

        def triage(pairs: list[Pair]) -> tuple[list[Pair], list[Pair]]:
            """(to embed, metadata-only changes); unchanged documents are counted, dropped."""
            if not skip_unchanged:
                return pairs, []
            ids = [pid(d) for d, _, _ in pairs]
            with engine_lock:
                stored = {p.id: p.payload for p in self.call(
                    lambda: engine.retrieve(name, ids), f"reading {name!r}")}
            embed: list[Pair] = []
            relabel: list[Pair] = []
            for pair in pairs:
                before, now = stored.get(pid(pair[0])), pair[1]
                if before is not None and _clash(pair[0], before.get(ID_KEY)):
                    refuse(pair[0], before.get(ID_KEY))
                elif before is None or before.get(HASH_KEY) != now[HASH_KEY]:
                    embed.append(pair)
                elif {k: v for k, v in before.items() if k != CODES_KEY} != now:
                    relabel.append(pair)  # (the codes come with the vectors, not the caller)
                else:
                    report.unchanged += 1
            return embed, relabel

        def embed_texts(texts: list[str]) -> np.ndarray:
            encoded = embedder.encode_documents(texts, warn=False)
            report.truncated += encoded.truncated
            report.tokens += encoded.tokens
            report.padded_tokens += encoded.padded
            return encoded.vectors

        def encode(pairs: list[Pair]) -> Vectors:
            nonlocal checked
            docs = [d for d, _, _ in pairs]
            cuts = [spans or [(0, len(d.text))] for d, _, spans in pairs]
            report.windows += sum(len(c) for c in cuts)
            report.windowed += sum(len(c) > 1 for c in cuts)
            rows: list[np.ndarray | None] = [None] * len(docs)
            if given is not None:
                missing = [d.id for d in docs if pid(d) not in given]
                if missing:
                    raise InputError(f"no vector given for documents {preview(missing)}")
                for i, (doc, cut) in enumerate(zip(docs, cuts, strict=True)):
                    if len(cut) == 1 or self.windows is None:
                        rows[i] = np.asarray(given[pid(doc)], dtype=np.float32)[None, :]
                if not checked and rows[0] is not None:  # one vector, in the first batch
                    _agree(embedder, name, docs[0], rows[0][0], embedded_text)
                    checked = True
            todo = [i for i, r in enumerate(rows) if r is None]
            if todo:
                texts = [docs[i].text[a:b] for i in todo for a, b in cuts[i]] \
                    if self.windows else [docs[i].text for i in todo]
                flat = embed_texts(texts)
                at = 0
                for i in todo:
                    width = len(cuts[i]) if self.windows else 1
                    rows[i], at = flat[at:at + width], at + width
            done = [r for r in rows if r is not None]
            dense = np.stack([embedder.pooled(r) for r in done])
            check_vectors(dense, docs, embedder.dim)
            return dense, (done if self.windows else None)

        def refuse(doc: Document, other: object) -> None:
            why = (f"document id {doc.id!r} ({type(doc.id).__name__}) and id {other!r} "
                   f"({type(other).__name__}), already written, are one point (ids are "
                   "compared as text); give every id as one type. It was not written.")
            if on_refused is None:
                raise Refused(why, doc)
            on_refused(doc, why)

        def embed(items: list[Item]) -> Staged:
            unique: dict[str, Item] = {}
            for doc, spans in items:  # the last one of an id wins
                key = pid(doc)
                first = unique[key][0].id if key in unique else seen.get(key, doc.id)
                if _clash(doc, first):
                    refuse(doc, first)
                    continue
                report.duplicates += key in unique or key in seen
                unique[key] = (doc, spans)
            seen.update((key, doc.id) for key, (doc, _) in unique.items())
            pairs, relabel = triage([(d, payload(d, s), s) for d, s in unique.values()])
            if not pairs:
                return pairs, None, None, relabel
            made = encode(pairs)
            if made[1] is not None:  # a long document's passage is picked from its payload
                pairs = [(d, {**p, CODES_KEY: window_codes(w)} if len(w) > 1 else p, s)
                         for (d, p, s), w in zip(pairs, made[1], strict=True)]
            sparse: list[Sparse] | None = None
            if self.sparse:
                sparse = list(self.sparse.encode_documents([d.text for d, _, _ in pairs]))
            return pairs, made, sparse, relabel  # all vectors written together, never apart

        stages = staged(self.items(documents, on_refused), embed)
        try:
            for batch, (pairs, made, sparse, relabel) in stages:
                if pairs and made is not None:
                    ids = [pid(d) for d, _, _ in pairs]
                    payloads = [p for _, p, _ in pairs]
                    dense, windows = made
                    if room:  # a stream: stop between batches while the store can still close
                        room.check_batch(payloads, sparse, sum(map(len, windows or [])))
                    with engine_lock:
                        self.call(functools.partial(
                            engine.upsert, name, ids, dense, payloads, sparse, windows),
                            f"writing {len(ids)} points to {name!r}", report)
                for doc, new, _ in relabel:  # metadata changed, text not: no re-embedding
                    with engine_lock:
                        self.call(functools.partial(
                            engine.set_payload, name, new, None, ids=[pid(doc)]),
                            f"updating {doc.id!r} in {name!r}", report)
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
            failed = [label(d) for d, _ in batch]
            if isinstance(exc, Refused):
                failed.append(label(exc.document))
            report.failed += len(failed)
            report.failed_ids.extend(failed)
            report.seconds = time.monotonic() - start
            raise IngestError(
                f"Ingest stopped: {report.written} documents written; not written: "
                f"{preview(failed) or 'the document at fault'} and any later documents. "
                f"Cause: {exc} " + (
                    "Fix or leave out the document at fault, then rerun: what is written is "
                    "skipped, not embedded again."
                    if isinstance(exc, (InputError, CollectionMismatch))
                    else "Rerun the same ingest to complete it (no duplicates)."),
                report,
            ) from exc
        finally:  # now, not when a traceback lets go of it: the stage thread stops first
            stages.close()
        if optimize and report.written:
            self.call(lambda: engine.optimize(name), f"optimizing {name!r}")
        report.seconds = time.monotonic() - start
        return report


def _clash(doc: Document, other: object) -> bool:
    """Whether ``doc``'s id and ``other`` (an id already written to its point) are one point
    but not one id: ``1`` and ``"1"``."""
    return other is not None and doc.id is not None and type(other) is not type(doc.id)


def _agree(embedder: Embedder, name: str, doc: Document, given: np.ndarray,
           embedded_text: Callable[[Document], str] | None) -> None:
    """Refuse vectors that the collection's model did not make (one is re-embedded)."""
    if given.shape != (embedder.dim,):
        return  # check_vectors names the wrong shape
    ours = embedder.embed_documents([(embedded_text or (lambda d: d.text))(doc)], warn=False)[0]
    cosine = float(ours @ given / (np.linalg.norm(ours) * np.linalg.norm(given) or 1.0))
    if cosine < MIN_AGREEMENT:
        raise CollectionMismatch(
            f"the vector given for document {doc.id!r} is not {embedder.spec.name}'s "
            f"(cosine {cosine:.3f} to it): collection {name!r} holds that model's vectors "
            "only; embed with it (or let the collection embed)"
        )
