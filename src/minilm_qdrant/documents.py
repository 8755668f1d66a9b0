"""The values that flow through the pipeline: documents in, hits out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from minilm_qdrant.windows import Passage

TEXT_KEY, ID_KEY, METADATA_KEY, EXTRA_KEY = "text", "doc_id", "metadata", "extra"
"""The payload layout of every point: the text, the caller's id, the metadata object, and
(only when a framework keeps its own data, e.g. LlamaIndex node relationships) ``extra``."""
ORIGIN_KEY = "origin"
"""The reserved top-level payload key saying which folder sync wrote a point (``folder:NAME``).
Only the folder reader sets it (`minilm_qdrant.sources`); a caller's metadata lives under
``metadata`` and cannot reach it, so a sync deletes or replaces only what a sync wrote."""
HASH_KEY = "embedded"
"""A hash of what was embedded (the model's fingerprint and the text as embedded): an ingest
skips documents whose stored hash and payload are unchanged."""

ID_NAMESPACE = uuid.UUID("6f0b3c1e-2d7a-5b8e-9c4f-1a2b3c4d5e6f")


@dataclass(frozen=True)
class Document:
    """A text to store, its metadata, and the caller's own id (optional)."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    """A framework's own data kept beside the text and metadata (not searched, not shown)."""
    origin: str | None = field(default=None, repr=False, kw_only=True)
    """Which folder sync owns the document (``folder:NAME``; `ORIGIN_KEY`): set by the folder
    reader alone, never from metadata; None for documents from anywhere else."""

    @property
    def point_id(self) -> str:
        """Deterministic Qdrant id: UUIDv5 of the caller's id, else of the text.

        The same ingest run twice writes the same ids, so it never duplicates a point.
        """
        if self.id is not None:
            return point_id(self.id)
        return str(uuid.uuid5(ID_NAMESPACE, f"text:{self.text}"))

    def payload(self) -> dict[str, Any]:
        """The point's payload (filters address metadata as ``metadata.<key>``)."""
        payload = {TEXT_KEY: self.text, ID_KEY: self.id, METADATA_KEY: self.metadata}
        if self.extra:
            payload[EXTRA_KEY] = self.extra
        if self.origin is not None:
            payload[ORIGIN_KEY] = self.origin
        return payload

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> Document:
        origin = payload.get(ORIGIN_KEY)
        return cls(payload.get(TEXT_KEY, ""), payload.get(METADATA_KEY) or {},
                   payload.get(ID_KEY), payload.get(EXTRA_KEY) or {},
                   origin=origin if isinstance(origin, str) else None)


def point_id(doc_id: str | int) -> str:
    """The Qdrant point id of the document with the caller's id ``doc_id``."""
    return str(uuid.uuid5(ID_NAMESPACE, f"id:{doc_id}"))


@dataclass(frozen=True)
class Hit:
    """One search result; higher ``score`` = closer. Dense: the raw similarity; sparse: the
    BM25 score; hybrid: the fused score (DBSF: sum of per-side normalised scores, mostly 0-2; RRF:
    sum of 1 / (k + rank)). ``text`` is the whole stored text, ``passage`` the window of it
    that answered (the whole text where it is one window)."""

    id: str | int
    score: float
    text: str
    metadata: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    passage: Passage | None = field(default=None, repr=False)

    @classmethod
    def from_point(cls, pid: str, score: float, payload: dict[str, Any]) -> Hit:
        """A hit from a stored point: the caller's id where there is one, else the point id."""
        doc_id = payload.get(ID_KEY)
        return cls(doc_id if doc_id is not None else pid, score, payload.get(TEXT_KEY, ""),
                   payload.get(METADATA_KEY) or {}, payload.get(EXTRA_KEY) or {})

    @property
    def pages(self) -> list[int] | None:
        """The pages (1-based) of a PDF's passage: where it lies in the file (None for a
        document that is not a PDF read by `minilm_qdrant.sources`)."""
        starts = self.metadata.get("pages")
        if not isinstance(starts, list) or not starts:
            return None
        from minilm_qdrant.formats import pages_of

        start, end = (self.passage.start, self.passage.end) if self.passage else (0, len(self.text))
        return pages_of(starts, start, end)

    def as_dict(self) -> dict[str, Any]:
        found: dict[str, Any] = {"id": self.id, "score": self.score, "text": self.text,
                                 "metadata": self.metadata}
        if self.passage is not None:
            found["passage"] = self.passage.as_dict()
            if self.pages is not None:
                found["passage"]["pages"] = self.pages
        return found

