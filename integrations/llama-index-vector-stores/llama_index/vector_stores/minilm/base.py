"""`MiniLMVectorStore`: a LlamaIndex vector store over the core `Collection`, on any engine.

It translates LlamaIndex calls into `Collection` calls and holds no retrieval logic. Nodes are
written through `Collection.upsert` (the node id is the caller's id; deterministic point ids,
bounded and retried batches, fingerprint check, BM25 vectors), with the core's payload layout:
the node's text as ``text`` and its metadata as ``metadata`` (so the CLI and LangChain read
them, and filters address the same keys everywhere). What LlamaIndex needs besides (node type,
``ref_doc_id``, relationships) is kept under the payload's ``extra`` key.

Queries are embedded by the collection's own model (``is_embedding_query = False``): the
query text is all the store needs, for the dense side and for BM25 alike.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
from llama_index.core.schema import BaseNode, MetadataMode, TextNode
from llama_index.core.vector_stores.types import (
    BasePydanticVectorStore,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
    VectorStoreQueryResult,
)
from llama_index.core.vector_stores.utils import metadata_dict_to_node, node_to_metadata_dict
from llama_index.embeddings.minilm import MiniLMEmbedding
from llama_index.vector_stores.minilm.filters import to_qdrant
from pydantic import PrivateAttr
from qdrant_client import models

from minilm_qdrant import Collection, Document, Hit
from minilm_qdrant.collection import DEFAULT_COLLECTION
from minilm_qdrant.engines import Fusion, Mode

NODE_KEYS = ("_node_content", "_node_type", "ref_doc_id")
"""What LlamaIndex keeps of a node besides its text and metadata (in the payload's extra)."""
REF_DOC_KEY = "extra.ref_doc_id"


class MiniLMVectorStore(BasePydanticVectorStore):
    """LlamaIndex vector store on a minilm-qdrant collection (embedded Qdrant Edge by default).

    Example:
        ```python
        from llama_index.core import StorageContext, VectorStoreIndex
        from llama_index.vector_stores.minilm import MiniLMVectorStore

        store = MiniLMVectorStore("talks", model_name="all-MiniLM-L6-v2", path="./qdrant_data")
        index = VectorStoreIndex.from_vector_store(store, embed_model=store.embed_model)
        ```

    Args:
        collection_name: the collection (created, with its fingerprint, when missing).
        model_name: the model of a new collection; default: the one an existing collection
            records (else the registry default).
        backend: the core backend that embeds (``torch``, ``onnx``, ``auto``...).
        path / url / api_key / client: where it lives (as `Collection`); default in memory.
        collection: an open core `Collection` to use as it is.
        fusion: how hybrid fuses in Qdrant, ``dbsf`` (default) or ``rrf``.
        tenant: confine every node added, read, queried or deleted to this tenant (of a
            tenanted collection: see minilm_qdrant's README, "Tenants").
        **collection_kwargs: passed to `Collection` (``options``, ``batch_size``, ...).
    """

    stores_text: bool = True
    is_embedding_query: bool = False
    flat_metadata: bool = False
    collection_name: str = DEFAULT_COLLECTION
    fusion: str = "dbsf"

    _collection: Collection = PrivateAttr()
    _embed_model: MiniLMEmbedding = PrivateAttr()

    def __init__(
        self,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        model_name: str | None = None,
        backend: str = "auto",
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: Any | None = None,
        collection: Collection | None = None,
        fusion: Fusion = "dbsf",
        tenant: str | None = None,
        **collection_kwargs: Any,
    ) -> None:
        if collection is None:
            embedder = MiniLMEmbedding(model_name, backend=backend).embedder \
                if model_name else None
            collection = Collection(collection_name, embedder, path=path, url=url,
                                    api_key=api_key, client=client, backend=backend,
                                    tenant=tenant, **collection_kwargs)
        elif tenant is not None:
            collection = collection.tenant(tenant)
        super().__init__(collection_name=collection.name, fusion=fusion)  # type: ignore[call-arg]
        self._collection = collection
        core = collection.embedder
        embed = MiniLMEmbedding(core.model_name, backend=core.backend_name,
                                embed_batch_size=core.batch_size)
        embed._embedder = core  # one set of weights per process
        self._embed_model = embed

    @classmethod
    def class_name(cls) -> str:
        return "MiniLMVectorStore"

    @property
    def client(self) -> Collection:
        """The core `Collection` this store translates calls to."""
        return self._collection

    @property
    def embed_model(self) -> MiniLMEmbedding:
        """The collection's model as a LlamaIndex embedding (for ``VectorStoreIndex``)."""
        return self._embed_model

    def close(self) -> None:
        self._collection.close()

    # --- writes -------------------------------------------------------------------------

    def add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        """Write nodes through the core; their ids. The embeddings LlamaIndex made (of the
        node's embed content: its text with the metadata it chose) are used as they are once
        one is checked against the collection's model (`CollectionMismatch` otherwise); nodes
        without one are embedded by the core from their text."""
        given = [n for n in nodes if n.embedding is not None]
        by_id = {n.node_id: n for n in given}
        if given:
            self._collection.upsert(
                (_document(n) for n in given),
                vectors={n.node_id: n.embedding for n in given},  # type: ignore[misc]
                embedded_text=lambda d: by_id[str(d.id)].get_content(MetadataMode.EMBED))
        bare = [n for n in nodes if n.embedding is None]
        if bare:
            self._collection.upsert(_document(n) for n in bare)
        return [n.node_id for n in nodes]

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``."""
        self._collection.delete(_ref_doc([ref_doc_id]))

    def delete_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
        **delete_kwargs: Any,
    ) -> None:
        """Delete nodes by id, by metadata filters, or both (nodes matching both)."""
        if node_ids == []:
            return
        where = _select(self._collection, node_ids, filters)
        if where is None:
            raise ValueError("give node_ids or filters")
        self._collection.delete(where)

    def clear(self) -> None:
        """Delete every node of the collection (the collection and its fingerprint stay)."""
        self._collection.delete(models.Filter())

    # --- reads --------------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Nodes by id (in the order asked), by metadata filters, or both."""
        if node_ids == []:
            return []
        if filters is None and node_ids is not None:
            return [_node(d) for d in self._collection.get(node_ids)]
        where = _select(self._collection, node_ids, filters)
        return [_node(d) for d in self._collection.find(where)]

    def query(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        """DEFAULT runs the collection's mode (hybrid where it has BM25 vectors); HYBRID,
        SPARSE and MMR (``mmr_threshold``: relevance weight, default 0.5) as named."""
        mode, diversity = self._mode(query)
        k = query.hybrid_top_k if mode == "hybrid" and query.hybrid_top_k else \
            query.similarity_top_k
        # an empty list is no constraint: the index passes its (empty) node list of a store
        # that keeps the text
        flt = _select(self._collection, query.node_ids or None, query.filters,
                      query.doc_ids or None)
        if query.query_str:
            hits = self._collection.search(
                query.query_str, k, mode=mode, fusion=self.fusion,  # type: ignore[arg-type]
                diversity=diversity, query_filter=flt)
        elif query.query_embedding is not None and mode == "dense":
            hits = self._collection.search_vector(
                np.asarray(query.query_embedding, dtype=np.float32), k, mode="dense",
                diversity=diversity, query_filter=flt)
        else:
            raise ValueError("a query needs query_str (or, in dense mode, query_embedding)")
        return VectorStoreQueryResult(nodes=[_node(h) for h in hits],
                                      similarities=[h.score for h in hits],
                                      ids=[str(h.id) for h in hits])

    def _mode(self, query: VectorStoreQuery) -> tuple[Mode, float]:
        default = self._collection.default_mode
        if query.mode == VectorStoreQueryMode.DEFAULT:
            return default, 0.0
        if query.mode == VectorStoreQueryMode.MMR:
            weight = 0.5 if query.mmr_threshold is None else query.mmr_threshold
            if not 0.0 <= weight <= 1.0:
                raise ValueError(f"mmr_threshold must be between 0 and 1, got {weight}")
            return default, 1.0 - weight
        if query.mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SPARSE):
            return self._collection.resolve_mode(query.mode.value), 0.0
        raise ValueError(f"query mode {query.mode.value!r} is not supported: use default, "
                         "hybrid, sparse or mmr")

    async def aquery(self, query: VectorStoreQuery, **kwargs: Any) -> VectorStoreQueryResult:
        return await asyncio.to_thread(self.query, query, **kwargs)

    async def async_add(self, nodes: Sequence[BaseNode], **kwargs: Any) -> list[str]:
        return await asyncio.to_thread(self.add, nodes, **kwargs)


def _document(node: BaseNode) -> Document:
    saved = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
    return Document(node.get_content(metadata_mode=MetadataMode.NONE), dict(node.metadata),
                    id=node.node_id, extra={k: saved[k] for k in NODE_KEYS if k in saved})


def _node(found: Document | Hit) -> BaseNode:
    """A LlamaIndex node from a stored document; one the CLI or LangChain wrote (no extra)
    becomes a TextNode with its id, text and metadata. A hit in a longer text comes back as
    the passage that answered: the node's text is that window, ``start_char_idx`` /
    ``end_char_idx`` locate it (in the source document where the node had offsets, else in
    the node's stored text, which `get_nodes` returns whole)."""
    if "_node_content" in found.extra:
        node = metadata_dict_to_node(dict(found.extra), text=found.text)
        node.metadata = dict(found.metadata)  # the payload's metadata is the one kept current
    else:
        node = TextNode(id_=str(found.id), text=found.text, metadata=dict(found.metadata))
    part = found.passage if isinstance(found, Hit) else None
    if part is not None and (part.start, part.end) != (0, len(found.text)) and \
            isinstance(node, TextNode):
        base = node.start_char_idx or 0
        node.text = part.text
        node.start_char_idx, node.end_char_idx = base + part.start, base + part.end
    return node


def _ref_doc(ids: list[str]) -> models.Filter:
    return models.Filter(must=[models.FieldCondition(key=REF_DOC_KEY,
                                                     match=models.MatchAny(any=list(ids)))])


def _select(
    collection: Collection, node_ids: list[str] | None, filters: MetadataFilters | None,
    doc_ids: list[str] | None = None,
) -> models.Filter | None:
    """Node ids (as the collection's point ids: a tenant's own), metadata filters and source
    documents, all to hold."""
    must: list[Any] = []
    if node_ids is not None:
        must.append(models.HasIdCondition(has_id=[collection.scope.id_of(i) for i in node_ids]))
    metadata = to_qdrant(filters)
    if metadata is not None:
        must.append(metadata)
    if doc_ids is not None:
        must.append(_ref_doc(doc_ids))
    return models.Filter(must=must) if must else None

