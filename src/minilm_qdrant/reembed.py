"""`reembed`: rebuild a collection with another model from the text stored in its payloads.

No source files are needed: each stored document (id, text, metadata) goes through the new
collection's `Collection.upsert`, with the ingest's guarantees (bounded, retried batches;
points already stored there with the same text and model are skipped, so an interrupted
reembed rerun finishes it). The old collection keeps answering until the new one is complete;
``swap`` then makes the new one answer under the old name (`Engine.swap`: an atomic directory
exchange on the embedded store, an alias on a server).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from minilm_qdrant.collection import Collection
from minilm_qdrant.documents import Document
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import CollectionOptions
from minilm_qdrant.errors import InputError
from minilm_qdrant.sources import legacy_marked
from minilm_qdrant.tenancy import TENANT_KEY
from minilm_qdrant.windows import WindowSettings

PAGE = 1024


@dataclass
class ReembedReport:
    """What a reembed did."""

    source: str
    target: str
    model: str
    written: int
    unchanged: int
    """Already in the target with this model and text (a resumed run), not embedded again."""
    points: int
    """Points in the target afterwards (equal to the source's)."""
    seconds: float
    swapped: bool = False


def target_name(source: Collection, embedder: Embedder) -> str:
    """The new collection's default name: the old one plus a hash of the new model's
    fingerprint, so that rerunning the same reembed finds (and finishes) the same target."""
    blob = json.dumps({**embedder.fingerprint, "windows": True}, sort_keys=True).encode()
    return f"{source.name}-{hashlib.sha256(blob).hexdigest()[:8]}"


def reembed(
    source: Collection, embedder: Embedder, *, to_collection: str | None = None,
    swap: bool = False, on_progress: Callable[[int], None] | None = None,
) -> ReembedReport:
    """Fill ``to_collection`` (default `target_name`) in ``source``'s store with ``embedder``'s
    vectors of ``source``'s stored documents (ids, metadata and BM25 settings kept; every
    window embedded: also the way to move a collection made before windows, with the same
    model), then, with ``swap``, exchange the two names."""
    if source.scope.tenant is not None:
        raise InputError(f"reembed rebuilds every tenant of {source.name!r}: open it with "
                         "all_tenants=True (the CLI's reembed does)")
    if embedder.fingerprint == source.embedder.fingerprint and source.windowed:
        raise InputError(f"collection {source.name!r} already holds {embedder.spec.name} "
                         "vectors of every window: nothing to re-embed")
    target_label = to_collection or target_name(source, embedder)
    if target_label == source.name:
        raise InputError("--to-collection must differ from the source collection")
    began = time.perf_counter()
    overlap = source.windows.overlap if source.windows else WindowSettings().overlap
    options = CollectionOptions(sparse=source.sparse.settings if source.sparse else None,
                                windows=WindowSettings(overlap=overlap))  # the new model's size
    # the same engine (and store lock) as the source: not closed here, the source owns it
    target = Collection(target_label, embedder, engine=source.engine, options=options,
                        batch_size=source.batch_size, retry_policy=source.retry_policy,
                        all_tenants=source.scope.tenanted)
    expected = source.count()
    written = unchanged = 0
    for tenant, documents in _stored(source):  # each tenant's documents stay that tenant's
        into = target if tenant is None else target.tenant(tenant)
        report = into.upsert(documents, on_progress=on_progress, optimize=False)
        written, unchanged = written + report.written, unchanged + report.unchanged
    target.optimize()
    points = target.count()
    if points != expected:
        raise InputError(f"{target_label!r} holds {points} points after the reembed but "
                         f"{source.name!r} holds {expected}: was {source.name!r} written to "
                         "meanwhile? Rerun to finish; nothing was swapped.")
    if swap:
        source.swap(target_label)
    return ReembedReport(source.name, target_label, embedder.spec.name, written,
                         unchanged, points, time.perf_counter() - began, swap)


def _stored(source: Collection) -> Iterator[tuple[str | None, list[Document]]]:
    """Each page's stored documents, by tenant (None: an untenanted collection)."""
    for page in source.engine.scroll(source.name, PAGE, False):
        by_tenant: dict[str | None, list[Document]] = {}
        for point in page:
            tenant = point.payload.get(TENANT_KEY) if source.scope.tenanted else None
            doc = Document.from_payload(point.payload)
            by_tenant.setdefault(tenant, []).append(
                doc if source.origins else legacy_marked(doc))  # the new one is marked
        yield from by_tenant.items()
