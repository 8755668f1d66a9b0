"""Free space for the embedded store: refuse before writing what cannot fit, and before opening
a shard where Qdrant Edge would die of SIGBUS.

Why it matters: Qdrant Edge writes through mmap; on a full filesystem a write (or even the
opening of a shard, which maps a fresh 32 MiB WAL segment) kills the process with SIGBUS
instead of raising. Measured on a 40 MiB tmpfs: a store of 1,000 points opened for a read
with 1, 4 or 12 MiB free died of SIGBUS; with 35 MiB free it opened and searched.

Calibration of `disk_bytes` (all-MiniLM-L6-v2, 384 dims, 500 documents of 560 bytes of text
and two metadata fields, indexed with `Collection.upsert`, `du` of the closed store): 2.49 MB
with BM25 sparse vectors (4,989 bytes a document), 2.35 MB dense-only (4,694); the WAL holds
about half of it. The estimate below, 3 x (vector + payload + sparse) + 1 KiB, says 7.7 KB a
document for these: about 1.6 x the measure, room for the optimizer's copy of a segment.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from minilm_qdrant.errors import DiskFull

MIB = 1 << 20
OPEN_RESERVE = 40 * MIB
"""Free space below which a shard is not opened: one 32 MiB WAL segment and some slack."""
MARGIN = 64 * MIB
"""Free space every write leaves behind (so that the store can still be opened and closed)."""
FACTOR = 3
"""Bytes on disk per byte of point: segment + WAL (about as much again) + an optimizer copy."""
PER_POINT = 1024
"""HNSW links, id maps and segment bookkeeping per point."""


def free_bytes(path: str | Path) -> int:
    """Free bytes for an unprivileged writer on the filesystem holding ``path`` (or, when it
    does not exist yet, its nearest existing parent)."""
    where = Path(path).absolute()
    while not where.exists() and where != where.parent:
        where = where.parent
    return shutil.disk_usage(where).free


WINDOW_CHARS = 800
"""Characters a window holds at least (254 word pieces of English are ~1,100), for estimates."""


def payload_bytes(payload: dict[str, Any]) -> int:
    """Bytes of a payload as JSON text."""
    return len(json.dumps(payload, default=str, ensure_ascii=False).encode("utf-8", "replace"))


def disk_bytes(dim: int, payload: int, sparse_terms: int = 0) -> int:
    """Estimated bytes on disk of one point (see the calibration above)."""
    return FACTOR * (4 * dim + payload + 8 * sparse_terms) + PER_POINT


def _mb(n: int) -> str:
    return f"{n / MIB:,.0f} MB" if n >= 10 * MIB else f"{n / MIB:,.1f} MB"


def check_open(path: str | Path) -> None:
    """Refuse to open a shard at ``path`` where Edge could die of SIGBUS (too little room)."""
    free = free_bytes(path)
    if free < OPEN_RESERVE:
        raise DiskFull(
            f"only {_mb(free)} free on the filesystem of {path}; opening the embedded store "
            f"needs {_mb(OPEN_RESERVE)} (Qdrant Edge maps a 32 MiB WAL segment, and a full disk "
            "kills it): free space first (the store is unchanged)"
        )


class Room:
    """Free-space checks for one collection of an embedded store at ``root``."""

    def __init__(self, root: str | Path, collection: str, dim: int) -> None:
        self.root, self.collection, self.dim = Path(root), collection, dim

    def check(self, need: int, what: str) -> None:
        """Raise `DiskFull` unless ``need`` bytes fit and leave `MARGIN` free."""
        free = free_bytes(self.root)
        if free < need + MARGIN:
            raise DiskFull(
                f"not enough free space on {self.root} for ~{_mb(need)} of {what} of collection "
                f"{self.collection!r} ({_mb(free)} free, {_mb(MARGIN)} kept in reserve): free "
                "space or choose another --path"
            )

    def check_total(
        self, count: int, payload: int, stored: Callable[[], int] | None = None
    ) -> None:
        """Before an ingest of ``count`` points of ``payload`` bytes in all; where they do not
        fit, only the part not stored yet (``stored()`` points: a rerun) has to."""
        if count <= 0:
            return
        need = count * disk_bytes(self.dim, 0) + FACTOR * payload
        if free_bytes(self.root) >= need + MARGIN or stored is None:
            self.check(need, f"{count:,} documents")
            return
        left = max(0, count - stored())
        self.check(need * left // count, f"{left:,} documents")

    def check_documents(self, documents: Iterable[Any], stored: Callable[[], int],
                        windowed: bool = False) -> None:
        """Before an ingest whose documents are all known (a list): their estimated size."""
        if not isinstance(documents, Sequence):
            return  # a stream: `check_batch` runs before each write instead
        chars = [len(getattr(d, "text", "") or "") for d in documents]
        text = sum(chars) + sum(payload_bytes(getattr(d, "metadata", None) or {})
                                for d in documents)
        windows = sum(1 + n // WINDOW_CHARS for n in chars) if windowed else 0
        self.check_total(len(documents), text + 200 * len(documents) + 4 * self.dim * windows,
                         stored)

    def check_batch(self, payloads: list[dict[str, Any]], sparse: list[Any] | None,
                    windows: int = 0) -> None:
        """Before one batch's write: room for twice its estimate, and the margin after it."""
        terms = sum(len(s.indices) for s in sparse) if sparse else 0
        need = sum(disk_bytes(self.dim, payload_bytes(p)) for p in payloads) + 8 * FACTOR * terms
        need += FACTOR * 4 * self.dim * windows
        self.check(2 * need, f"the next batch ({len(payloads)} documents)")


def room_for(engine: object, collection: str, dim: int) -> Room | None:
    """Checks for an embedded (Qdrant Edge) store; None for a server or qdrant-client."""
    root = getattr(engine, "disk_root", None)
    return Room(root, collection, dim) if root is not None else None
