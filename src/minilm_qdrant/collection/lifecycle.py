"""The document lifecycle: documents by the caller's ids or by filter, read, deleted or given
new metadata, nothing re-embedded. A room built from `Parts`, on whatever engine they hold;
every request is confined to the handle's tenant (`minilm_qdrant.tenancy`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from qdrant_client import models

from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.documents import METADATA_KEY, TEXT_KEY, Document, metadata_problem
from minilm_qdrant.engines import Sparse
from minilm_qdrant.errors import InputError
from minilm_qdrant.fingerprint import Fingerprint
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings


@dataclass(frozen=True)
class Lifecycle:
    """Stored documents of one collection handle: count, get, find, delete, set metadata."""

    parts: Parts

    def count(self, query_filter: models.Filter | None = None) -> int:
        """Points in the collection (matching ``query_filter`` when given)."""
        scoped = self.parts.scope.filter(query_filter)
        return int(self.parts.call(lambda: self.parts.engine.count(self.parts.name, scoped),
                              f"counting {self.parts.name!r}"))

    def get(self, ids: Iterable[str | int]) -> list[Document]:
        """The stored documents with these (caller's) ids, in the order asked; ids not stored
        are absent from the result."""
        wanted = [self.parts.scope.id_of(i) for i in _ids(ids)]
        points = self.parts.call(lambda: self.parts.engine.retrieve(self.parts.name, wanted),
                            f"reading from {self.parts.name!r}")
        found = {p.id: p for p in points if self.parts.scope.owns(p.payload)}
        return [Document.from_payload(found[pid].payload) for pid in dict.fromkeys(wanted)
                if pid in found]

    def find(self, query_filter: models.Filter | None = None, limit: int | None = None
             ) -> list[Document]:
        """The stored documents matching ``query_filter`` (all when None), up to ``limit``,
        in the engine's id order."""
        out: list[Document] = []
        parts = self.parts
        scoped = parts.scope.filter(query_filter)
        for page in parts.engine.scroll(parts.name, parts.batch_size, False, scoped):
            out += (Document.from_payload(p.payload) for p in page if parts.scope.owns(p.payload))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def delete(self, where: Iterable[str | int] | models.Filter) -> int:
        """Delete documents by the caller's ids or by a filter (``Filter()`` matches every
        document); returns how many were."""
        self.parts.scope.writable()
        selected, n = self._select(where)
        if not n:
            return 0
        if isinstance(selected, models.Filter):
            self.parts.call(lambda: self.parts.engine.delete_by_filter(self.parts.name, selected),
                       f"deleting from {self.parts.name!r}")
        else:
            self.parts.call(lambda: self.parts.engine.delete(self.parts.name, selected),
                       f"deleting from {self.parts.name!r}")
        return n

    def set_metadata(
        self, where: Iterable[str | int] | models.Filter, values: dict[str, Any]
    ) -> int:
        """Set metadata keys (merged into each document's metadata; nothing is re-embedded)
        on documents chosen by the caller's ids or by a filter; returns how many matched."""
        if not isinstance(values, dict) or not all(isinstance(k, str) for k in values):
            raise InputError("metadata values must be a dict with string keys")
        bad = metadata_problem(values)
        if bad:
            raise InputError(f"{bad}; nothing was changed")
        self.parts.scope.writable()
        selected, n = self._select(where)
        if n:
            ids = None if isinstance(selected, models.Filter) else selected
            flt = selected if isinstance(selected, models.Filter) else None
            self.parts.call(lambda: self.parts.engine.set_payload(
                self.parts.name, values, METADATA_KEY, ids=ids, query_filter=flt),
                f"updating metadata in {self.parts.name!r}")
        return n

    def add_sparse(self, settings: Bm25Settings | None = None,
                   on_progress: Callable[[int], None] | None = None) -> tuple[int, Bm25Encoder]:
        """Give a dense-only collection BM25 sparse vectors, encoded from the text stored in
        its payloads (nothing is re-embedded), so that hybrid search works on it; returns the
        number of points encoded and the encoder. Embedded store only (a server or local mode
        cannot add a vector to an existing collection: re-index there). A rerun after an
        interruption completes it; the fingerprint records the settings only once every point
        has them."""
        parts = self.parts
        if parts.sparse is not None:
            raise InputError(f"Collection {parts.name!r} already has BM25 sparse vectors")
        encoder = Bm25Encoder(settings or Bm25Settings())
        parts.call(lambda: parts.engine.add_sparse(parts.name),
                   f"adding sparse to {parts.name!r}")
        done = 0
        for page in parts.engine.scroll(parts.name, parts.batch_size, with_vectors=False):
            ids = [p.id for p in page]
            vectors: list[Sparse] = list(
                encoder.encode_documents([str(p.payload.get(TEXT_KEY, "")) for p in page]))
            parts.call(lambda: parts.engine.upsert_sparse(parts.name, ids, vectors),  # noqa: B023
                       f"writing sparse vectors to {parts.name!r}")
            done += len(ids)
            if on_progress:
                on_progress(len(ids))
        record = Fingerprint(parts.embedder.fingerprint, encoder.settings,
                             parts.windows.settings if parts.windows else None,
                             parts.scope.tenanted, parts.origins)
        parts.call(lambda: parts.engine.set_metadata(parts.name, record.as_metadata()),
                   f"updating the fingerprint of {parts.name!r}")
        return done, encoder

    def _select(
        self, where: Iterable[str | int] | models.Filter
    ) -> tuple[list[str] | models.Filter, int]:
        """Point ids that exist in this scope (for caller's ids) or the filter confined to it,
        and how many points match."""
        if isinstance(where, models.Filter):
            scoped = self.parts.scope.filter(where)
            assert scoped is not None
            return scoped, self.count(where)
        wanted = list(dict.fromkeys(self.parts.scope.id_of(i) for i in _ids(where)))
        found = self.parts.call(lambda: self.parts.engine.retrieve(self.parts.name, wanted),
                           f"reading from {self.parts.name!r}") if wanted else []
        existing = [p.id for p in found if self.parts.scope.owns(p.payload)]
        return existing, len(existing)


def _ids(ids: Iterable[str | int]) -> list[str | int]:
    if isinstance(ids, (str, int)):
        return [ids]  # one id, not its characters
    if isinstance(ids, dict):
        raise InputError("give ids as a list, or a filter as qdrant_client.models.Filter")
    out = list(ids)
    for i in out:
        if not isinstance(i, (str, int)) or isinstance(i, bool):
            raise InputError(f"document id {i!r} is not a string or an integer")
    return out
