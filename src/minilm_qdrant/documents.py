"""The values that flow through the pipeline: documents in, hits out, and the payload layout
they share on every engine (with the reserved keys that a caller's metadata cannot reach)."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Literal

Distance = Literal["dot", "cosine", "euclid"]
"""How a model's vectors are compared (its `ModelSpec.distance`, a collection's metric)."""

TEXT_KEY, ID_KEY, METADATA_KEY, EXTRA_KEY = "text", "doc_id", "metadata", "extra"
"""The payload layout of every point: the text, the caller's id, the metadata object, and
(only when a framework keeps its own data, e.g. LlamaIndex node relationships) ``extra``."""
ORIGIN_KEY = "origin"
"""The reserved top-level payload key saying which folder sync wrote a point (``folder:NAME``).
Only the folder reader sets it (`minilm_qdrant.inputs`); a caller's metadata lives under
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


@dataclass(frozen=True)
class Passage:
    """The window of a hit that best matches the query: its text and character offsets in the
    document's stored text (``text == document[start:end]``)."""

    text: str
    start: int
    end: int

    def as_dict(self) -> dict[str, Any]:
        return {"text": self.text, "start": self.start, "end": self.end}


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
        document that is not a PDF read by `minilm_qdrant.inputs`)."""
        starts = self.metadata.get("pages")
        if not isinstance(starts, list) or not starts:
            return None
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


def pages_of(starts: list[int], start: int, end: int) -> list[int]:
    """The pages (1-based) that characters ``start:end`` of a PDF's text lie on."""
    return [i + 1 for i, begin in enumerate(starts)
            if begin < max(end, start + 1)
            and (i + 1 == len(starts) or starts[i + 1] > start)]


def metadata_problem(metadata: object) -> str | None:
    """Why a metadata value cannot be stored (NaN, Infinity, an integer over 64 bits, a
    non-JSON type, a non-string key), naming the field; None when it can."""
    if not isinstance(metadata, dict):
        return f"metadata is {type(metadata).__name__}, not an object"

    def walk(value: object, where: str) -> str | None:
        if isinstance(value, bool) or value is None or isinstance(value, str):
            return None
        if isinstance(value, int):
            ok = -(2**63) <= value < 2**63
            return None if ok else f"metadata field {where!r} is an integer over 64 bits"
        if isinstance(value, float):
            return None if math.isfinite(value) else \
                f"metadata field {where!r} is {value} (JSON and Qdrant hold finite numbers only)"
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(key, str):
                    return f"metadata field {where!r} has a non-string key {key!r}"
                found = walk(item, f"{where}.{key}" if where else key)
                if found:
                    return found
            return None
        if isinstance(value, (list, tuple)):
            return next((f for i, v in enumerate(value) if (f := walk(v, f"{where}[{i}]"))),
                        None)
        return f"metadata field {where!r} is a {type(value).__name__}, which JSON cannot hold"

    return walk(metadata, "")


# --- who owns a document: the folder sync that wrote it, by its reserved mark --------------

SOURCE_KEY, FOLDER_KEY = "source", "folder"
FILE_KEYS = (SOURCE_KEY, FOLDER_KEY, "title", "modified", "bytes", "pages")
"""The metadata a file gives its document (refreshed on every read; a user's other keys kept)."""


def origin_of(folder: str) -> str:
    """The `ORIGIN_KEY` value of a folder's documents."""
    return f"folder:{folder}"


def owned(doc: Document, folder: str, marked: bool) -> bool:
    """Whether a sync of ``folder`` wrote ``doc``: its origin mark; in a collection made
    before the mark (not ``marked``), a document without one whose file fields name this
    folder and this path (as syncs recognised them then; marked once synced again)."""
    if doc.origin is not None or marked:
        return doc.origin == origin_of(folder)
    meta = doc.metadata
    return meta.get(FOLDER_KEY) == folder and meta.get(SOURCE_KEY) == doc.id \
        and "modified" in meta and "bytes" in meta


def legacy_marked(doc: Document) -> Document:
    """``doc`` marked as its folder's where a sync wrote it before the mark existed (as
    `owned` recognises it); any other document as it is. ``reembed`` moves old collections
    with it, so the new one needs no metadata to know what a sync owns."""
    folder = doc.metadata.get(FOLDER_KEY)
    if doc.origin is None and isinstance(folder, str) and owned(doc, folder, False):
        return replace(doc, origin=origin_of(folder))
    return doc
