"""The values that flow through the pipeline: documents in, hits out."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

ID_NAMESPACE = uuid.UUID("6f0b3c1e-2d7a-5b8e-9c4f-1a2b3c4d5e6f")


@dataclass(frozen=True)
class Document:
    """A text to store, its metadata, and the caller's own id (optional)."""

    text: str
    metadata: dict[str, Any] = field(default_factory=dict)
    id: str | int | None = None

    @property
    def point_id(self) -> str:
        """Deterministic Qdrant id: UUIDv5 of the caller's id, else of the text.

        The same ingest run twice writes the same ids, so it never duplicates a point.
        """
        key = f"id:{self.id}" if self.id is not None else f"text:{self.text}"
        return str(uuid.uuid5(ID_NAMESPACE, key))


@dataclass(frozen=True)
class Hit:
    """One search result; ``score`` is the raw similarity, higher = more similar."""

    id: str | int
    score: float
    text: str
    metadata: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "score": self.score, "text": self.text, "metadata": self.metadata}
