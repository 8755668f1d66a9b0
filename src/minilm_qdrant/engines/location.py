"""`Location`: where a collection lives, in one value, and the one place that opens its engine.

One of: an embedded store directory (``path``: Qdrant Edge, or qdrant-client local mode where
the directory already holds one), a Qdrant server or cluster (``url`` with ``api_key``), or a
caller's own ``QdrantClient``; none: qdrant-client's in-memory local mode. `Collection`,
`push`, both framework stores and the CLI build this value; none of them opens an engine.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from qdrant_client import QdrantClient

from minilm_qdrant.engines import Engine
from minilm_qdrant.engines.client import ClientEngine, connect
from minilm_qdrant.errors import InputError


@dataclass(frozen=True)
class Location:
    """Where a collection lives (see the module). The API key never shows in a repr."""

    path: str | None = None
    url: str | None = None
    api_key: str | None = field(default=None, repr=False)
    client: QdrantClient | None = field(default=None, repr=False, compare=False)
    allow_insecure: bool = False
    """Send an API key over plain http to a host that is not this machine."""

    def __post_init__(self) -> None:
        given = [n for n, v in (("path", self.path), ("url", self.url),
                                ("client", self.client)) if v is not None]
        if len(given) > 1:
            raise InputError(f"give one of path, url or client, not {' and '.join(given)}")

    @property
    def shown(self) -> str:
        """Where, for messages: the path, the URL without credentials or query, ``client``
        or ``:memory:``."""
        if self.url:
            return redact(self.url)
        return self.path or ("client" if self.client is not None else ":memory:")

    def open(self, *, create: bool = True) -> Engine:
        """The engine for this location. ``create=False`` (reads): an embedded store directory
        that does not exist is not created."""
        if self.client is not None:
            return ClientEngine(self.client, where="client")
        if self.url:
            return ClientEngine(connect(url=self.url, api_key=self.api_key,
                                        allow_insecure=self.allow_insecure), where=redact(self.url))
        if self.path and self.path != ":memory:":
            from minilm_qdrant.engines.edge import EdgeEngine
            from minilm_qdrant.engines.edge_files import is_client_local_store

            if is_client_local_store(self.path):
                return ClientEngine(connect(path=self.path), where=self.path)
            return EdgeEngine(self.path, create=create)
        return ClientEngine(connect(path=":memory:"), where=":memory:")


def redact(url: str) -> str:
    """The URL without credentials or query (where users sometimes put keys)."""
    if "://" not in url:
        return url.split("?")[0].rpartition("@")[2]
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], parts.path, "", ""))
