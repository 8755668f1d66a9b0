"""What an ingest's triage knows of a stored point (`Known`), and `Snapshot`: that much of every
point of a collection, taken once, for stagers that cannot read the store themselves.

Triage (`Run.triage`) sorts each document of a batch: not stored (embed it), stored with
another embedded text or model (embed it), stored with the same embedded text but other
metadata (rewrite the payload, embed nothing), or stored unchanged (skip it). It needs three
things of a stored point: the type of the caller's id written to it (``1`` and ``"1"`` are one
point but not one id), the hash of what was embedded, and the payload (window codes aside:
they come with the vectors). `Known` holds them as two 8-byte digests and a type.

An embedded store is locked to the one process that writes it, so workers of another process
(Ray actors, `minilm_qdrant.distributed`) stage batches against a `Snapshot` of it taken by
that process before they start: it is the only writer, so the snapshot stays true for the run.
A snapshot is numpy arrays (33 bytes a point; 10 M points: 330 MB), shared by every worker
of a machine through Ray's object store without a copy.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from minilm_qdrant.collection.parts import Parts
from minilm_qdrant.documents import HASH_KEY, ID_KEY, Document
from minilm_qdrant.windows import CODES_KEY

ID_NONE, ID_STR, ID_INT = 0, 1, 2
"""The type of the caller's id written to a point (none: the point's id came from its text)."""
DIGEST_BYTES = 8


def digest(value: object) -> bytes:
    """A 64-bit digest of a JSON value (keys sorted: equal values, equal digests)."""
    text = json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":"),
                      default=str)
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"),
                           digest_size=DIGEST_BYTES).digest()


def id_kind(doc_id: object) -> int:
    return ID_NONE if doc_id is None else ID_INT if isinstance(doc_id, int) else ID_STR


@dataclass(frozen=True)
class Known:
    """What triage needs of a stored point (see the module)."""

    kind: int
    """`ID_NONE`, `ID_STR` or `ID_INT`: the type of the caller's id written to it."""
    embedded: bytes
    """Digest of the hash of what was embedded (`documents.HASH_KEY`)."""
    payload: bytes
    """Digest of the payload, window codes aside."""

    @classmethod
    def of(cls, payload: dict[str, Any]) -> Known:
        """What a payload (stored, or about to be) tells triage."""
        return cls(id_kind(payload.get(ID_KEY)), digest(payload.get(HASH_KEY)),
                   digest({k: v for k, v in payload.items() if k != CODES_KEY}))

    def clashes(self, doc: Document) -> bool:
        """Whether ``doc``'s id and the id written to this point are one point but not one
        id (``1`` and ``"1"``)."""
        return doc.id is not None and self.kind != ID_NONE and id_kind(doc.id) != self.kind

    def written_id(self, doc: Document) -> str | int | None:
        """The id written to this point, as it was written (``doc`` names the same point)."""
        if self.kind == ID_NONE or doc.id is None:
            return None
        return int(str(doc.id)) if self.kind == ID_INT else str(doc.id)


Lookup = Callable[[list[str]], dict[str, Known]]
"""Point ids -> what is known of those that are stored (the triage's one read a batch)."""


class Snapshot:
    """`Known` of every point of a collection (in one tenant's scope), as numpy arrays sorted
    by point id (16 bytes each: every id is a UUID, so none is a prefix of another);
    picklable, and shared without a copy by Ray workers of one machine."""

    def __init__(self, ids: np.ndarray, kinds: np.ndarray, embedded: np.ndarray,
                 payloads: np.ndarray) -> None:
        self.ids, self.kinds, self.embedded, self.payloads = ids, kinds, embedded, payloads

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def of(cls, points: Iterable[tuple[str, Known]]) -> Snapshot:
        pairs = list(points)
        ids = np.array([uuid.UUID(pid).bytes for pid, _ in pairs], dtype="S16")
        order = np.argsort(ids, kind="stable")
        return cls(
            ids[order],
            np.array([k.kind for _, k in pairs], dtype=np.int8)[order],
            np.array([k.embedded for _, k in pairs], dtype=f"V{DIGEST_BYTES}")[order],
            np.array([k.payload for _, k in pairs], dtype=f"V{DIGEST_BYTES}")[order])

    @classmethod
    def take(cls, parts: Parts, page: int = 1024) -> Snapshot:
        """What the collection of ``parts`` holds now, in its scope (one pass, no vectors)."""
        pages = parts.engine.scroll(parts.name, page, with_vectors=False,
                                    query_filter=parts.scope.filter(None))
        return cls.of((p.id, Known.of(p.payload)) for batch in pages for p in batch)

    def lookup(self, ids: list[str]) -> dict[str, Known]:
        """`Lookup`: what is known of the stored ones among ``ids``."""
        if not ids or not len(self.ids):
            return {}
        wanted = np.array([uuid.UUID(i).bytes for i in ids], dtype="S16")
        at = np.minimum(np.searchsorted(self.ids, wanted), len(self.ids) - 1)
        found: dict[str, Known] = {}
        for pid, i, hit in zip(ids, at, self.ids[at] == wanted, strict=True):
            if hit:
                found[pid] = Known(int(self.kinds[i]), bytes(self.embedded[i]),
                                   bytes(self.payloads[i]))
        return found

