"""The document lifecycle: documents by the caller's ids or by filter, read, deleted or given
new metadata, nothing re-embedded. Mixed into `Collection`, on whatever engine it drives; every
request is confined to the handle's tenant (`minilm_qdrant.tenancy`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from qdrant_client import models

from minilm_qdrant.batching import metadata_problem
from minilm_qdrant.documents import METADATA_KEY, Document
from minilm_qdrant.engines import Engine
from minilm_qdrant.errors import InputError
from minilm_qdrant.tenancy import Scope


class Lifecycle:
    """`Collection`'s methods for stored documents (it provides what is declared here)."""

    name: str
    engine: Engine
    batch_size: int
    scope: Scope
    _call: Callable[..., Any]

    def count(self, query_filter: models.Filter | None = None) -> int:
        """Points in the collection (matching ``query_filter`` when given)."""
        scoped = self.scope.filter(query_filter)
        return int(self._call(lambda: self.engine.count(self.name, scoped),
                              f"counting {self.name!r}"))

    def get(self, ids: Iterable[str | int]) -> list[Document]:
        """The stored documents with these (caller's) ids, in the order asked; ids not stored
        are absent from the result."""
        wanted = [self.scope.id_of(i) for i in _ids(ids)]
        points = self._call(lambda: self.engine.retrieve(self.name, wanted),
                            f"reading from {self.name!r}")
        found = {p.id: p for p in points if self.scope.owns(p.payload)}
        return [Document.from_payload(found[pid].payload) for pid in dict.fromkeys(wanted)
                if pid in found]

    def find(self, query_filter: models.Filter | None = None, limit: int | None = None
             ) -> list[Document]:
        """The stored documents matching ``query_filter`` (all when None), up to ``limit``,
        in the engine's id order."""
        out: list[Document] = []
        scoped = self.scope.filter(query_filter)
        for page in self.engine.scroll(self.name, self.batch_size, False, scoped):
            out += (Document.from_payload(p.payload) for p in page if self.scope.owns(p.payload))
            if limit is not None and len(out) >= limit:
                return out[:limit]
        return out

    def delete(self, where: Iterable[str | int] | models.Filter) -> int:
        """Delete documents by the caller's ids or by a filter (``Filter()`` matches every
        document); returns how many were."""
        self.scope.writable()
        selected, n = self._select(where)
        if not n:
            return 0
        if isinstance(selected, models.Filter):
            self._call(lambda: self.engine.delete_by_filter(self.name, selected),
                       f"deleting from {self.name!r}")
        else:
            self._call(lambda: self.engine.delete(self.name, selected),
                       f"deleting from {self.name!r}")
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
        self.scope.writable()
        selected, n = self._select(where)
        if n:
            ids = None if isinstance(selected, models.Filter) else selected
            flt = selected if isinstance(selected, models.Filter) else None
            self._call(lambda: self.engine.set_payload(
                self.name, values, METADATA_KEY, ids=ids, query_filter=flt),
                f"updating metadata in {self.name!r}")
        return n

    def _select(
        self, where: Iterable[str | int] | models.Filter
    ) -> tuple[list[str] | models.Filter, int]:
        """Point ids that exist in this scope (for caller's ids) or the filter confined to it,
        and how many points match."""
        if isinstance(where, models.Filter):
            scoped = self.scope.filter(where)
            assert scoped is not None
            return scoped, self.count(where)
        wanted = list(dict.fromkeys(self.scope.id_of(i) for i in _ids(where)))
        found = self._call(lambda: self.engine.retrieve(self.name, wanted),
                           f"reading from {self.name!r}") if wanted else []
        existing = [p.id for p in found if self.scope.owns(p.payload)]
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
