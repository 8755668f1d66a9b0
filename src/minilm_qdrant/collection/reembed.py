"""`reembed`: rebuild a collection with another model from the text stored in its payloads.

No source files are needed: each stored document (id, text, metadata) goes through the new
collection's write path (built from its `Parts`), with the ingest's guarantees (bounded,
retried batches; points already stored there with the same text and model are skipped, so an
interrupted reembed rerun finishes it). The old collection keeps answering until the new one is
complete; ``Collection.reembed(swap=True)`` then makes the new one answer under the old name
(`Engine.swap`: an atomic directory exchange on the embedded store, an alias on a server).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from minilm_qdrant.collection.batching import MAX_BATCH_BYTES
from minilm_qdrant.collection.lifecycle import Lifecycle
from minilm_qdrant.collection.options import CollectionOptions
from minilm_qdrant.collection.parts import Parts, open_parts
from minilm_qdrant.collection.write import WritePath
from minilm_qdrant.documents import Document, legacy_marked
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.errors import InputError
from minilm_qdrant.tenancy import TENANT_KEY, Scope
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


def target_name(source: Parts, embedder: Embedder) -> str:
    """The new collection's default name: the old one plus a hash of the new model's
    fingerprint, so that rerunning the same reembed finds (and finishes) the same target."""
    blob = json.dumps({**embedder.fingerprint, "windows": True}, sort_keys=True).encode()
    return f"{source.name}-{hashlib.sha256(blob).hexdigest()[:8]}"


def reembed(
    source: Parts, embedder: Embedder, *, to_collection: str | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ReembedReport:
    """Fill ``to_collection`` (default `target_name`) in ``source``'s store with ``embedder``'s
    vectors of ``source``'s stored documents (ids, metadata, BM25 settings and quantization
    kept; every window embedded: also the way to move a collection made before windows, with
    the same model). Exchanging the names is `Collection.swap`'s
    (``Collection.reembed(swap=True)``)."""
    if source.scope.tenant is not None:
        raise InputError(f"reembed rebuilds every tenant of {source.name!r}: open it with "
                         "all_tenants=True (the CLI's reembed does)")
    if embedder.fingerprint == source.embedder.fingerprint and source.windows is not None:
        raise InputError(f"collection {source.name!r} already holds {embedder.spec.name} "
                         "vectors of every window: nothing to re-embed")
    target_label = to_collection or target_name(source, embedder)
    if target_label == source.name:
        raise InputError("--to-collection must differ from the source collection")
    began = time.perf_counter()
    overlap = source.windows.overlap if source.windows else WindowSettings().overlap
    options = CollectionOptions(sparse=source.sparse.settings if source.sparse else None,
                                windows=WindowSettings(overlap=overlap),  # the new model's size
                                quantization=source.quantization)
    # the same engine (and store lock) as the source: not closed here, the source owns it
    target = open_parts(source.engine, target_label, source.where, embedder, options=options,
                        create=True, scope=Scope(source.scope.tenanted, None),
                        all_tenants=source.scope.tenanted, backend=embedder.backend_name,
                        retry_policy=source.retry_policy, batch_size=source.batch_size)
    expected = Lifecycle(source).count()
    written = unchanged = 0
    for tenant, documents in _stored(source):  # each tenant's documents stay that tenant's
        into = target if tenant is None else replace(target, scope=Scope(True, tenant))
        report = WritePath(into, None if source.engine.in_process else MAX_BATCH_BYTES).write(
            documents, on_progress=on_progress, optimize=False)
        written, unchanged = written + report.written, unchanged + report.unchanged
    target.call(lambda: target.engine.optimize(target_label), f"optimizing {target_label!r}")
    points = Lifecycle(target).count()
    if points != expected:
        raise InputError(f"{target_label!r} holds {points} points after the reembed but "
                         f"{source.name!r} holds {expected}: was {source.name!r} written to "
                         "meanwhile? Rerun to finish; nothing was swapped.")
    return ReembedReport(source.name, target_label, embedder.spec.name, written,
                         unchanged, points, time.perf_counter() - began)


def _stored(source: Parts) -> Iterator[tuple[str | None, list[Document]]]:
    """Each page's stored documents, by tenant (None: an untenanted collection); documents a
    sync wrote before the mark existed are marked on the way (the new collection is)."""
    for page in source.engine.scroll(source.name, PAGE, False):
        by_tenant: dict[str | None, list[Document]] = {}
        for point in page:
            tenant = point.payload.get(TENANT_KEY) if source.scope.tenanted else None
            doc = Document.from_payload(point.payload)
            by_tenant.setdefault(tenant, []).append(
                doc if source.origins else legacy_marked(doc))
        yield from by_tenant.items()
