"""The write path: documents -> checks -> windows -> vectors (+ BM25) -> bounded, retried,
acknowledged writes, with resume lookups. One room: `WritePath` receives its `Parts` and a
request bound, and never reaches back into its caller.

`WritePath.items` checks and batches; `WritePath.write` hands the batches to one `Run`
(`minilm_qdrant.collection.run`), whose named steps embed the next batch while this one is
written. Workers of other processes run the same steps apart (`WritePath.run`: stage, and
store where they reach the store; `WritePath.write_staged`: store what they staged).
Each batch is acknowledged before it counts; a batch that fails for good stops the ingest
with a report of what was and was not written.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from minilm_qdrant.collection.batching import (
    BATCH_TARGET_BYTES,
    Refused,
    bounded,
    estimated_bytes,
    problem,
    too_large,
)
from minilm_qdrant.collection.known import Lookup
from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.collection.report import UpsertReport
from minilm_qdrant.collection.run import Item, OnRefused, Run, Staged
from minilm_qdrant.documents import Document


@dataclass(frozen=True)
class WritePath:
    """Writes documents into the collection of ``parts``."""

    parts: Parts
    max_batch_bytes: int | None
    """The request bound a document's point must fit (None: none; the engine takes requests
    in this process, so a long text's every window reaches it whatever its size)."""

    def items(self, documents: Iterable[Document], on_refused: OnRefused | None = None
              ) -> Iterator[list[Item]]:
        """Checked documents with their windows, in batches bounded by count and bytes; a
        document that cannot be sent raises `Refused` after the batch before it (or, with
        ``on_refused``, is handed to it with why, and the rest goes on)."""
        parts, limit = self.parts, self.max_batch_bytes
        dim, sparse = parts.embedder.dim, parts.sparse is not None

        def checked() -> Iterator[tuple[Item, int]]:
            for doc in documents:
                why = problem(doc, dim, limit, sparse)
                spans, cost = None, 0
                if not why:
                    spans = parts.windows.cut([doc.text])[0] if parts.windows else None
                    cost = estimated_bytes(doc, dim, sparse, len(spans) if spans else 0)
                    why = too_large(doc, cost, limit) if limit and cost > limit else None
                if why and on_refused is not None and isinstance(doc, Document):
                    on_refused(doc, why)
                    continue
                if why:
                    raise Refused(why, doc)
                yield (doc, spans), cost

        target = min(limit or BATCH_TARGET_BYTES, BATCH_TARGET_BYTES)
        batches = bounded(checked(), lambda pair: pair[1], parts.batch_size,
                          target)  # a bigger point goes alone
        return ([item for item, _ in batch] for batch in batches)

    def write(
        self, documents: Iterable[Document], *,
        on_progress: Callable[[int], None] | None = None, optimize: bool = True,
        vectors: Mapping[str | int, Sequence[float]] | None = None,
        embedded_text: Callable[[Document], str] | None = None,
        skip_unchanged: bool = True, on_refused: OnRefused | None = None,
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
        run = Run(self.parts, vectors=vectors, embedded_text=embedded_text,
                  skip_unchanged=skip_unchanged, on_refused=on_refused)
        return run.go(documents, self.items(documents, on_refused), on_progress=on_progress,
                      optimize=optimize)

    def run(self, *, skip_unchanged: bool = True, on_refused: OnRefused | None = None,
            lookup: Lookup | None = None) -> Run:
        """One `Run` of this write path for a caller that drives its steps itself: a worker
        stages its batches (`Run.stage`, triaging against ``lookup``: default the store) and,
        where it can reach the store, stores them (`Run.store`)."""
        return Run(self.parts, vectors=None, embedded_text=None, skip_unchanged=skip_unchanged,
                   on_refused=on_refused, lookup=lookup)

    def write_staged(
        self, stages: Generator[tuple[list[Item], Staged], None, None], *,
        on_progress: Callable[[int], None] | None = None, optimize: bool = True,
    ) -> UpsertReport:
        """Store batches that `Run.stage` staged elsewhere (workers of other processes, from
        this path's `items`), in the order given: each acknowledged and retried as `write`
        stores its own, their counts added to the report. ``stages`` yields each batch with
        its staged form, and raises `StageError` (the batch, its cause chained) where staging
        failed: what came before it is stored, and `IngestError` names what was not."""
        return self.run().drive(stages, on_progress=on_progress, optimize=optimize)


__all__ = ["Item", "Lookup", "OnRefused", "Staged", "UpsertReport", "WritePath"]
