"""The tenant scope: one collection, many tenants, and nobody sees another's documents.

A tenanted collection stamps each point's tenant under a reserved top-level payload key that
the caller's metadata cannot reach (metadata lives under ``metadata``), indexes it with
Qdrant's tenant index (``is_tenant``), namespaces point ids by tenant (two tenants may both
have a document ``"doc-1"``), and puts a ``must`` condition on it around every filter that
reaches the engine, so a caller's filter can narrow the scope but never widen it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from qdrant_client import models

from minilm_qdrant.documents import ID_NAMESPACE, Document, point_id
from minilm_qdrant.engines import ScaleOptions
from minilm_qdrant.errors import InputError

Options = TypeVar("Options", bound=ScaleOptions)

TENANT_KEY = "tenant"
"""The reserved payload key holding a point's tenant (top level, beside ``metadata``)."""
MAX_TENANT_CHARS = 256
TENANT_PAYLOAD_M = 16
"""Links of each tenant's own HNSW graph in a tenanted collection (Qdrant's ``payload_m``,
with the global graph off: ``m=0``)."""


def tenanted_options(options: Options) -> Options:
    """A tenanted collection's index: a graph per tenant and none global (a tenant's search
    is all a handle runs but an administrator's; faster and as exact, benchmarks/tenants.md),
    unless ``options`` chooses ``hnsw_m`` or ``hnsw_payload_m``."""
    if (options.hnsw_m, options.hnsw_payload_m) != (None, None):
        return options
    return replace(options, hnsw_m=0, hnsw_payload_m=TENANT_PAYLOAD_M)


def check_tenant(tenant: object) -> str:
    """``tenant`` if it names a tenant, else a one-line `InputError`."""
    if not isinstance(tenant, str) or not tenant.strip():
        raise InputError(f"tenant {tenant!r} must be a non-empty string (e.g. tenant='acme')")
    if len(tenant) > MAX_TENANT_CHARS or any(c in tenant for c in "\x00\n\r"):
        raise InputError(f"tenant {tenant[:40]!r}... must be one line of at most "
                         f"{MAX_TENANT_CHARS} characters")
    return tenant


@dataclass(frozen=True)
class Scope:
    """What one handle may see. ``tenanted``: the collection is; ``tenant``: the one this
    handle is confined to (None on a tenanted collection: every tenant, read-only, an
    administrator's explicit choice)."""

    tenanted: bool = False
    tenant: str | None = None

    @property
    def everyone(self) -> bool:
        """An unscoped handle on a tenanted collection (reads everything, writes nothing)."""
        return self.tenanted and self.tenant is None

    def id_of(self, doc_id: str | int) -> str:
        """The point id of the caller's document id within this scope."""
        if self.tenant is None:
            return point_id(doc_id)
        return str(uuid.uuid5(ID_NAMESPACE, f"tenant:{self.tenant}\x00id:{doc_id}"))

    def point_id(self, doc: Document) -> str:
        """The point id of ``doc`` (its id, else its text) within this scope."""
        if doc.id is not None:
            return self.id_of(doc.id)
        if self.tenant is None:
            return doc.point_id
        return str(uuid.uuid5(ID_NAMESPACE, f"tenant:{self.tenant}\x00text:{doc.text}"))

    def filter(self, flt: models.Filter | None) -> models.Filter | None:
        """``flt`` confined to this tenant: the caller's filter nested under a ``must`` on
        the tenant key, so nothing in it (``should``, ``must_not``, the key itself) widens it."""
        if self.tenant is None:
            return flt
        if flt is not None and not isinstance(flt, models.Filter):
            raise InputError(f"query_filter must be a qdrant_client.models.Filter, not "
                             f"{type(flt).__name__}")
        mine: list[models.Condition] = [models.FieldCondition(
            key=TENANT_KEY, match=models.MatchValue(value=self.tenant))]
        return models.Filter(must=mine + ([flt] if flt is not None else []))

    def stamp(self, payload: dict[str, Any]) -> dict[str, Any]:
        """The payload to store: this tenant's under the reserved key."""
        if self.everyone:
            raise InputError("this handle sees every tenant and writes for none: write through "
                             "collection.tenant(NAME) (or Collection(..., tenant=NAME))")
        return payload if self.tenant is None else {**payload, TENANT_KEY: self.tenant}

    def owns(self, payload: dict[str, Any]) -> bool:
        """Whether a stored point belongs to this scope (a second check after the engine's)."""
        return self.tenant is None or payload.get(TENANT_KEY) == self.tenant

    def writable(self) -> None:
        """Raise where this handle may not change documents (every tenant's handle)."""
        self.stamp({})
