"""One ingest run of the write path, in named steps:

1. `Run.stage` (the stage thread, one batch ahead): drop repeated ids (`dedupe`), look the
   batch up (`triage`: unchanged skipped, metadata-only changes set aside), embed the rest
   (`encode`) and BM25-encode them;
2. `Run.store` (this thread): write the staged batch, acknowledged, then the metadata-only
   changes;
3. `Run.stopped`: a batch that fails for good becomes an `IngestError` naming what was not
   written.

Embedding batch i+1 overlaps writing batch i (`staging.staged`); the engine is used by one
thread at a time (a lock).

The steps also run apart: a worker of another process (a Ray actor,
`minilm_qdrant.distributed`) runs `Run.stage` on its batches, triaging against a `Lookup`
(the store's, or a `known.Snapshot` of an embedded store it cannot open), and the process that
holds the store stores what it staged (`Run.drive`, `WritePath.write_staged`); to a server the
worker runs `Run.store` itself.
"""

from __future__ import annotations

import functools
import hashlib
import json
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from minilm_qdrant.collection.batching import Refused, agree, check_vectors, label, preview
from minilm_qdrant.collection.known import Known, Lookup
from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.collection.report import UpsertReport
from minilm_qdrant.collection.staging import StageError, staged
from minilm_qdrant.documents import HASH_KEY, Document
from minilm_qdrant.engines import Sparse
from minilm_qdrant.engines.diskspace import Room, room_for
from minilm_qdrant.errors import (
    CollectionMismatch,
    IngestError,
    InputError,
    MiniLMQdrantError,
    MissingDependency,
    StoreCorrupt,
)
from minilm_qdrant.windows import CODES_KEY, SPANS_KEY, Span, window_codes

Item = tuple[Document, "list[Span] | None"]
"""A document and its windows (None: the collection stores one vector a text)."""
OnRefused = Callable[[Document, str], None]
"""Takes a document that cannot be stored and why (``--skip-invalid``)."""


@dataclass
class Pending:
    """A document on its way: its payload (the hash of what is embedded included) and its
    windows (None: one vector a text)."""

    doc: Document
    payload: dict[str, Any]
    spans: list[Span] | None


@dataclass
class Staged:
    """What the stage thread hands on for one batch."""

    items: list[Item]
    """The batch as it came (named in the report if it fails)."""
    embed: list[Pending] = field(default_factory=list)
    dense: np.ndarray | None = None
    """Each document's dense vector (pooled where windowed)."""
    windows: list[np.ndarray] | None = None
    """Each document's window vectors (a collection that stores windows)."""
    sparse: list[Sparse] | None = None
    relabel: list[Pending] = field(default_factory=list)
    """Documents whose metadata alone changed: their payload rewritten, nothing embedded."""
    counted: UpsertReport | None = None
    """What staging counted where it ran in another process (a worker's), added to the
    report of the run that stores the batch."""


class Run:
    """The state of one `WritePath.write`: the report, the ids seen, the model's identity."""

    def __init__(self, parts: Parts, *, vectors: Mapping[str | int, Sequence[float]] | None,
                 embedded_text: Callable[[Document], str] | None, skip_unchanged: bool,
                 on_refused: OnRefused | None, lookup: Lookup | None = None) -> None:
        parts.scope.writable()
        self.parts = parts
        self.report = UpsertReport()
        self.skip_unchanged, self.on_refused = skip_unchanged, on_refused
        self.text_of = embedded_text or (lambda d: d.text)
        self.given = None if vectors is None else {
            parts.scope.id_of(k): v for k, v in vectors.items()}
        self.checked = self.given is None  # one given vector is checked against the model
        self.seen: dict[str, str | int | None] = {}  # point id -> the caller's id written
        identity = {**parts.embedder.fingerprint}
        if parts.windows:
            identity["windows"] = parts.windows.settings.as_dict()
        self.model = json.dumps(identity, sort_keys=True)
        self.lock = threading.Lock()  # the stage thread reads while this one writes
        self.room: Room | None = None
        self.lookup: Lookup = lookup or self.read
        """What triage knows of the stored points among a batch's ids (default: the store's
        answer; a worker that cannot open an embedded store: a snapshot of it)."""

    # --- the run ---------------------------------------------------------------------------

    def go(self, documents: Iterable[Document], batches: Iterator[list[Item]], *,
           on_progress: Callable[[int], None] | None, optimize: bool) -> UpsertReport:
        """Stage and store every batch; the report, or `IngestError` carrying it."""
        parts, start = self.parts, time.monotonic()
        room = room_for(parts.engine, parts.name, parts.embedder.dim)  # embedded store
        if room:  # a list: refused before any write
            room.check_documents(documents, lambda: parts.engine.count(parts.name),
                                 parts.windows is not None)
        return self.drive(staged(batches, self.stage), on_progress=on_progress,
                          optimize=optimize, start=start)

    def drive(self, stages: Generator[tuple[list[Item], Staged], None, None], *,
              on_progress: Callable[[int], None] | None, optimize: bool,
              start: float | None = None) -> UpsertReport:
        """Store every staged batch in turn (step 2), then build the index; the report, or
        `IngestError` carrying it. ``stages`` yields each batch with what was staged of it, and
        raises `StageError` (the batch, the cause chained) where staging failed."""
        parts, start = self.parts, time.monotonic() if start is None else start
        self.room = room_for(parts.engine, parts.name, parts.embedder.dim)  # embedded store
        current: list[Item] = []
        try:
            for current, staged_batch in stages:
                self.store(staged_batch)
                if on_progress:
                    on_progress(len(current))
                current = []
        except (MiniLMQdrantError, StageError) as raised:
            self.report.seconds = time.monotonic() - start
            cause = raised.__cause__ if isinstance(raised, StageError) else raised
            error = self.stopped(raised, current)
            if error is cause:  # not ours to wrap: its own message says what to do
                raise error from None
            raise error from cause
        finally:  # now, not when a traceback lets go of it: the stage thread stops first
            stages.close()
        if optimize and self.report.written:
            self.call(lambda: parts.engine.optimize(parts.name), f"optimizing {parts.name!r}")
        self.report.seconds = time.monotonic() - start
        return self.report

    def stage(self, items: list[Item]) -> Staged:
        """Step 1 (stage thread): what of this batch is written, with its vectors."""
        out = Staged(items)
        unique = self.dedupe(items)
        pending = [Pending(d, self.payload(d, s), s) for d, s in unique]
        out.embed, out.relabel = self.triage(pending)
        if not out.embed:
            return out
        out.dense, out.windows = self.encode(out.embed)
        if out.windows is not None:  # a long document's passage is picked from its payload
            for p, rows in zip(out.embed, out.windows, strict=True):
                if len(rows) > 1:
                    p.payload = {**p.payload, CODES_KEY: window_codes(rows)}
        if self.parts.sparse:
            out.sparse = list(self.parts.sparse.encode_documents([p.doc.text for p in out.embed]))
        return out  # all vectors of a point are written together, never apart

    def store(self, batch: Staged) -> None:
        """Step 2: write the staged batch (acknowledged), then its metadata-only changes."""
        parts, pid = self.parts, self.parts.scope.point_id
        if batch.embed and batch.dense is not None:
            ids = [pid(p.doc) for p in batch.embed]
            payloads = [p.payload for p in batch.embed]
            if self.room:  # a stream: stop between batches while the store can still close
                self.room.check_batch(payloads, batch.sparse,
                                      sum(map(len, batch.windows or [])))
            with self.lock:
                self.call(functools.partial(
                    parts.engine.upsert, parts.name, ids, batch.dense, payloads, batch.sparse,
                    batch.windows), f"writing {len(ids)} points to {parts.name!r}")
        for p in batch.relabel:  # metadata changed, text not: no re-embedding
            with self.lock:
                self.call(functools.partial(
                    parts.engine.set_payload, parts.name, p.payload, None, ids=[pid(p.doc)]),
                    f"updating {p.doc.id!r} in {parts.name!r}")
        self.report.written += len(batch.embed) + len(batch.relabel)
        if batch.counted is not None:
            self.report.add(batch.counted)

    def stopped(self, raised: BaseException, current: list[Item]) -> BaseException:
        """Step 3: the error that ends the run, naming what was not written."""
        exc: BaseException | None = raised
        if isinstance(raised, StageError):  # failed in the stage thread
            exc, current = raised.__cause__, raised.item or []  # type: ignore[assignment]
            if not isinstance(exc, MiniLMQdrantError):
                return exc  # type: ignore[return-value]
        if isinstance(exc, (StoreCorrupt, MissingDependency)):  # a rerun cannot help them:
            return exc  # their own message says what can
        failed = [label(d) for d, _ in current]
        if isinstance(exc, Refused):
            failed.append(label(exc.document))
        report = self.report
        report.failed += len(failed)
        report.failed_ids.extend(failed)
        return IngestError(
            f"Ingest stopped: {report.written} documents written; not written: "
            f"{preview(failed) or 'the document at fault'} and any later documents. "
            f"Cause: {exc} " + (
                "Fix or leave out the document at fault, then rerun: what is written is "
                "skipped, not embedded again."
                if isinstance(exc, (InputError, CollectionMismatch))
                else "Rerun the same ingest to complete it (no duplicates)."),
            report)

    # --- the steps' parts -------------------------------------------------------------------

    def call(self, fn: Callable[[], Any], what: str) -> Any:
        def counted(_: BaseException) -> None:
            self.report.retries += 1

        return self.parts.call(fn, what, on_retry=counted)

    def payload(self, doc: Document, spans: list[Span] | None) -> dict[str, Any]:
        """The point's payload: the document's, its windows' offsets, the hash of what is
        embedded, the tenant's stamp."""
        digest = hashlib.sha256(f"{self.model}\n{self.text_of(doc)}".encode(
            "utf-8", "surrogatepass"))
        extra = {SPANS_KEY: [list(s) for s in spans]} if spans and len(spans) > 1 else {}
        return self.parts.scope.stamp(
            {**doc.payload(), **extra, HASH_KEY: digest.hexdigest()[:32]})

    def dedupe(self, items: list[Item]) -> list[Item]:
        """The batch with each point once (the last of an id wins; counted as duplicates);
        ``1`` and ``"1"``, one point but not one id, refused."""
        pid, unique = self.parts.scope.point_id, dict[str, Item]()
        for doc, spans in items:
            key = pid(doc)
            first = unique[key][0].id if key in unique else self.seen.get(key, doc.id)
            if _clash(doc, first):
                self.refuse(doc, first)
                continue
            self.report.duplicates += key in unique or key in self.seen
            unique[key] = (doc, spans)
        self.seen.update((key, doc.id) for key, (doc, _) in unique.items())
        return list(unique.values())

    def triage(self, pending: list[Pending]) -> tuple[list[Pending], list[Pending]]:
        """(to embed, metadata-only changes); unchanged documents are counted and dropped."""
        if not self.skip_unchanged:
            return pending, []
        pid = self.parts.scope.point_id
        stored = self.lookup([pid(p.doc) for p in pending])
        embed: list[Pending] = []
        relabel: list[Pending] = []
        for p in pending:
            before = stored.get(pid(p.doc))
            mine = Known.of(p.payload) if before is not None else None
            if before is not None and before.clashes(p.doc):
                self.refuse(p.doc, before.written_id(p.doc))
            elif before is None or mine is None or before.embedded != mine.embedded:
                embed.append(p)
            elif before.payload != mine.payload:
                relabel.append(p)  # (the codes come with the vectors, not the caller)
            else:
                self.report.unchanged += 1
        return embed, relabel

    def read(self, ids: list[str]) -> dict[str, Known]:
        """`Lookup` from the store: one request, payloads only."""
        parts = self.parts
        with self.lock:
            points = self.call(lambda: parts.engine.retrieve(parts.name, ids),
                               f"reading {parts.name!r}")
        return {s.id: Known.of(s.payload) for s in points}

    def encode(self, pending: list[Pending]) -> tuple[np.ndarray, list[np.ndarray] | None]:
        """Dense vectors (pooled where windowed) and each document's window vectors: given
        ones where the caller made them, the rest embedded here."""
        parts, report = self.parts, self.report
        docs = [p.doc for p in pending]
        cuts = [p.spans or [(0, len(p.doc.text))] for p in pending]
        report.windows += sum(len(c) for c in cuts)
        report.windowed += sum(len(c) > 1 for c in cuts)
        if parts.windows and parts.windows.coverage == "first-window":  # embedded in part
            report.truncated += sum(c[-1][1] < len(p.doc.text.rstrip()) for p, c in zip(
                pending, cuts, strict=True))
        rows: list[np.ndarray | None] = [None] * len(docs)
        if self.given is not None:
            self.take_given(docs, cuts, rows)
        todo = [i for i, r in enumerate(rows) if r is None]
        if todo:
            texts = [docs[i].text[a:b] for i in todo for a, b in cuts[i]] \
                if parts.windows else [docs[i].text for i in todo]
            encoded = parts.embedder.encode_documents(
                texts, warn=False, limit=parts.windows.tokens if parts.windows else None)
            report.truncated += encoded.truncated
            report.tokens += encoded.tokens
            report.padded_tokens += encoded.padded
            at = 0
            for i in todo:
                width = len(cuts[i]) if parts.windows else 1
                rows[i], at = encoded.vectors[at:at + width], at + width
        done = [r for r in rows if r is not None]
        dense = np.stack([parts.embedder.pooled(r) for r in done])
        check_vectors(dense, docs, parts.embedder.dim)
        return dense, (done if parts.windows else None)

    def take_given(self, docs: list[Document], cuts: list[list[Span]],
                   rows: list[np.ndarray | None]) -> None:
        """Fill ``rows`` with the caller's vectors of one-window documents (the first one
        checked against the model)."""
        assert self.given is not None
        pid, given = self.parts.scope.point_id, self.given
        missing = [d.id for d in docs if pid(d) not in given]
        if missing:
            raise InputError(f"no vector given for documents {preview(missing)}")
        for i, (doc, cut) in enumerate(zip(docs, cuts, strict=True)):
            if len(cut) == 1 or self.parts.windows is None:
                rows[i] = np.asarray(given[pid(doc)], dtype=np.float32)[None, :]
        if not self.checked and rows[0] is not None:  # one vector, in the first batch
            agree(self.parts.embedder, self.parts.name, docs[0], rows[0][0],
                   self.text_of(docs[0]))
            self.checked = True

    def refuse(self, doc: Document, other: object) -> None:
        why = (f"document id {doc.id!r} ({type(doc.id).__name__}) and id {other!r} "
               f"({type(other).__name__}), already written, are one point (ids are compared "
               "as text); give every id as one type. It was not written.")
        if self.on_refused is None:
            raise Refused(why, doc)
        self.on_refused(doc, why)


def _clash(doc: Document, other: object) -> bool:
    """Whether ``doc``'s id and ``other`` (an id already written to its point) are one point
    but not one id: ``1`` and ``"1"``."""
    return other is not None and doc.id is not None and type(other) is not type(doc.id)
