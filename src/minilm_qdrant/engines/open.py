"""The one place that chooses an engine from path / url / api_key / client."""

from __future__ import annotations

from qdrant_client import QdrantClient

from minilm_qdrant.engines import Engine
from minilm_qdrant.engines.client import ClientEngine, connect


def open_engine(
    *,
    path: str | None = None,
    url: str | None = None,
    api_key: str | None = None,
    client: QdrantClient | None = None,
    allow_insecure: bool = False,
    create: bool = True,
) -> Engine:
    """An engine for where the data lives.

    - ``client``: that QdrantClient (server, cluster or local mode), as given.
    - ``url``: a Qdrant server or cluster.
    - ``path=DIR``: the embedded store, Qdrant Edge; a DIR that already holds a qdrant-client
      local store (``DIR/meta.json``) keeps opening in local mode, so no data is stranded.
    - ``path=":memory:"`` or nothing: qdrant-client's in-memory local mode.
    ``create=False`` (reads): a store directory that does not exist is not created.
    """
    if client is not None:
        return ClientEngine(client, where="client")
    if url:
        return ClientEngine(
            connect(url=url, api_key=api_key, allow_insecure=allow_insecure), where=url
        )
    if path and path != ":memory:":
        from minilm_qdrant.engines.edge import EdgeEngine
        from minilm_qdrant.engines.edge_files import is_client_local_store

        if is_client_local_store(path):
            return ClientEngine(connect(path=path), where=path)
        return EdgeEngine(path, create=create)
    return ClientEngine(connect(path=":memory:"), where=":memory:")
