"""Ingest: documents -> checked, bounded batches -> dense + BM25 vectors -> acknowledged writes.

Embedding of the next batch overlaps the write of this one (`pipeline.staged`); each batch is
acknowledged before it counts; a batch that fails for good stops the ingest with a report of
what was and was not written.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

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
from minilm_qdrant.documents import Document
from minilm_qdrant.engines import Sparse
from minilm_qdrant.errors import IngestError, MiniLMQdrantError
from minilm_qdrant.pipeline import StageError, staged

if TYPE_CHECKING:
    from minilm_qdrant.collection import Collection


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


def ingest(
    col: Collection, documents: Iterable[Document], *,
    on_progress: Callable[[int], None] | None = None, optimize: bool = True,
) -> UpsertReport:
    """Embed and write ``documents`` into ``col`` in bounded batches.

    With ``optimize`` (default) the engine then builds its search index (HNSW) where it
    does not do so on its own (the embedded store), so search is not a full scan.
    """
    report = UpsertReport()
    start = time.monotonic()
    seen: set[str] = set()
    batch: list[Document] = []

    def embed(batch: list[Document]) -> tuple[list[Document], np.ndarray, list[Sparse] | None]:
        unique = {doc.point_id: doc for doc in batch}  # last one wins
        report.duplicates += len(batch) - len(unique)
        report.duplicates += sum(pid in seen for pid in unique)
        seen.update(unique)
        docs = list(unique.values())
        encoded = col.embedder.encode_documents([d.text for d in docs], warn=False)
        report.truncated += encoded.truncated
        report.tokens += encoded.tokens
        report.padded_tokens += encoded.padded
        check_vectors(encoded.vectors, docs, col.embedder.dim)
        sparse: list[Sparse] | None = None
        if col.sparse:
            sparse = list(col.sparse.encode_documents([d.text for d in docs]))
        return docs, encoded.vectors, sparse  # written together: never one without the other

    try:
        for batch, (docs, vectors, sparse) in staged(col._batches(documents), embed):
            ids = [d.point_id for d in docs]
            payloads = [d.payload() for d in docs]
            col._call(
                functools.partial(col.engine.upsert, col.name, ids, vectors, payloads, sparse),
                f"writing {len(docs)} points to {col.name!r}",
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
        col.optimize()
    report.seconds = time.monotonic() - start
    return report


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
