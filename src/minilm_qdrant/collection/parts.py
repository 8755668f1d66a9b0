"""`Parts`: one frozen value of what a collection's rooms are given, and `open_parts`, which
creates or validates a collection against its fingerprint and returns it.

Every room (write path, search, lifecycle, reembed) is built from `Parts` and reaches nothing
else: no room calls back into `Collection`. `create` is the one place a fingerprinted
collection is made (a new `Collection`, and `push` making its target).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from minilm_qdrant import retry
from minilm_qdrant.collection.options import CollectionOptions
from minilm_qdrant.documents import Distance
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.engines import Engine, Quantization, ScaleOptions
from minilm_qdrant.errors import CollectionMismatch, CollectionNotFound
from minilm_qdrant.fingerprint import Fingerprint, describe
from minilm_qdrant.models import DEFAULT_MODEL
from minilm_qdrant.sparse import Bm25Encoder
from minilm_qdrant.tenancy import TENANT_KEY, Scope, tenanted_options
from minilm_qdrant.windows import Windows


@dataclass(frozen=True)
class Parts:
    """What the rooms of one collection handle receive."""

    engine: Engine
    name: str
    where: str
    """Where the collection lives, for messages (no credentials)."""
    embedder: Embedder
    sparse: Bm25Encoder | None
    """The BM25 encoder (settings from the fingerprint); None for a dense-only collection."""
    windows: Windows | None
    """How texts are cut into windows; None for a collection made before windows (each text
    one truncated vector)."""
    scope: Scope
    """The tenant this handle is confined to (`minilm_qdrant.tenancy`)."""
    retry_policy: retry.RetryPolicy
    batch_size: int
    """Points a request reads or writes at most."""
    origins: bool = True
    """Folder syncs mark what they write (`documents.ORIGIN_KEY`); False for a collection made
    before the mark (its synced documents known by their file metadata)."""
    quantization: Quantization | None = None
    """The pooled vectors' quantized copy (the fingerprint's): searches rescore on the
    originals."""

    def call(self, fn: Callable[[], Any], what: str,
             on_retry: Callable[[BaseException], None] | None = None) -> Any:
        """``fn()`` under the retry policy; ``what`` names it in errors."""
        return retry.call(fn, self.retry_policy, what=what, on_retry=on_retry)


def open_parts(
    engine: Engine, name: str, where: str, embedder: Embedder | None, *,
    options: CollectionOptions, create: bool, scope: Scope, all_tenants: bool, backend: str,
    retry_policy: retry.RetryPolicy, batch_size: int,
) -> Parts:
    """The parts of collection ``name``: validated against its fingerprint (models are never
    mixed), or created with one; the embedder is the one given, else the recorded model."""
    def call(fn: Callable[[], Any], what: str) -> Any:
        return retry.call(fn, retry_policy, what=what)

    info = call(lambda: engine.info(name), f"reading collection {name!r}")
    if info is None:
        if not create:
            raise CollectionNotFound(
                f"Collection {name!r} does not exist at {where}; index documents into it "
                "first (minilm-qdrant index FILE --collection NAME).")
        embedder = embedder or Embedder(DEFAULT_MODEL, backend=backend)
        sparse = Bm25Encoder(options.sparse) if options.sparse is not None else None  # bad
        windows = Windows.of(embedder, options.windows) if options.windows is not None \
            else None  # settings and a model without its files fail before anything is made
        made = Fingerprint(embedder.fingerprint, options.sparse,
                           windows.settings if windows else None, scope.tenanted, origins=True,
                           quantization=options.quantization)
        create_collection(engine, name, embedder.spec.dim, embedder.spec.distance, made,
                          options, call)
        return Parts(engine, name, where, embedder, sparse, windows, scope, retry_policy,
                     batch_size, quantization=made.quantization)
    stored = Fingerprint.read(info, name, where)
    given = embedder is not None
    embedder = embedder or Embedder(
        stored.model["model"], pooling=stored.model["pooling"],
        normalize=stored.model["normalize"], backend=backend)
    mine = embedder.fingerprint
    other_model = stored.mismatch(info, mine)
    if other_model and stored.tenants == scope.tenanted and given and create and not call(
            lambda: engine.count(name), f"counting {name!r}"):
        # empty: nothing was stored with its model, so it takes the one given now (a first
        # run that named a model it did not have must not leave a trap behind)
        call(lambda: engine.drop(name), f"dropping {name!r}")
        return open_parts(engine, name, where, embedder, options=options, create=create,
                          scope=scope, all_tenants=all_tenants, backend=backend,
                          retry_policy=retry_policy, batch_size=batch_size)
    if other_model:
        raise CollectionMismatch(
            f"Collection {name!r} holds vectors of {describe(stored.model)} (size {info.size}, "
            f"distance {info.distance}); this embedder makes {describe(mine)}. Models are never "
            "mixed in one collection: search with the collection's own model (omit --model) or "
            "use another collection.")
    if scope.tenant is None and all_tenants:  # every tenant, or no tenants
        scope = Scope(stored.tenants, None)
    if stored.tenants != scope.tenanted:
        raise CollectionMismatch(
            f"Collection {name!r} at {where} is tenanted: open it for one tenant (tenant=NAME, "
            "--tenant NAME), or with all_tenants=True to read every tenant's."
            if stored.tenants else
            f"Collection {name!r} at {where} is not tenanted (its documents belong to no "
            "tenant): open it without a tenant, or use another collection.")
    return Parts(engine, name, where, embedder,
                 Bm25Encoder(stored.sparse) if stored.sparse is not None else None,
                 Windows.of(embedder, stored.windows) if stored.windows is not None else None,
                 scope, retry_policy, batch_size, stored.origins, stored.quantization)


def create_collection(
    engine: Engine, name: str, size: int, distance: Distance, fingerprint: Fingerprint,
    options: ScaleOptions, call: Callable[[Callable[[], Any], str], Any],
    metadata: dict[str, Any] | None = None,
) -> None:
    """Make collection ``name`` as ``fingerprint`` records it: its BM25 and window vectors, a
    tenanted collection's graph per tenant and tenant index, its vectors' quantization.
    ``metadata``: the fingerprint's record exactly as another store holds it (``push`` copies
    it as it is)."""
    options = replace(options, quantization=fingerprint.quantization)
    if fingerprint.tenants:
        options = tenanted_options(options)
    record = metadata if metadata is not None else fingerprint.as_metadata()
    call(lambda: engine.create(name, size, distance, record, options,
                               sparse=fingerprint.sparse is not None,
                               windows=fingerprint.windows is not None),
         f"creating collection {name!r}")
    if fingerprint.tenants:  # Qdrant's tenant index: a tenant's points kept together
        call(lambda: engine.create_payload_index(name, TENANT_KEY, "tenant"),
             f"indexing tenants of {name!r}")
