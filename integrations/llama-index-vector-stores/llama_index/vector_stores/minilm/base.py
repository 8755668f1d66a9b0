"""`MiniLMVectorStore`: a LlamaIndex vector store over the core `Collection`, on any engine.

It translates LlamaIndex calls into `Collection` calls and holds no retrieval logic. Nodes are
written through `Collection.upsert` (the node id is the caller's id; deterministic point ids,
bounded and retried batches, fingerprint check, BM25 vectors), with the core's payload layout:
the node's text as ``text`` and its metadata as ``metadata`` (so the CLI and LangChain read
them, and filters address the same keys everywhere). What LlamaIndex needs besides (node type,
``ref_doc_id``, relationships) is kept under the payload's ``extra`` key.

Queries are embedded by the collection's own model (``is_embedding_query = False``): the
query text is all the store needs, for the dense side and for BM25 alike.

Reruns never duplicate (see the README, "Reruns, edits and deleted files"): LlamaIndex gives
documents and nodes random ids, so a node with a random id is stored under an id derived from
its document's stable key (a non-random ``ref_doc_id``, else the reader's ``file_path``, else
the document's hash) and its place and text; a document added again replaces its stale nodes
(those of the same key not written again). The store decides nothing at query time.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from llama_index.core.schema import (
    BaseNode,
    MetadataMode,
    NodeRelationship,
    RelatedNodeInfo,
    TextNode,
)
from llama_index.core.schema import Document as NodeDocument
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

from minilm_qdrant import Collection, Document, Hit, Location
from minilm_qdrant.collection import DEFAULT_COLLECTION
from minilm_qdrant.engines import Fusion, Mode

NODE_KEYS = ("_node_content", "_node_type", "ref_doc_id")
"""What LlamaIndex keeps of a node besides its text and metadata (in the payload's extra)."""
REF_DOC_KEY = "extra.ref_doc_id"
DOC_KEY = "doc_key"
"""The stable key of a node's document (in the payload's extra): what a rerun replaces."""
GIVEN_KEY = "given_id"
"""The random id LlamaIndex gave a node stored under a derived id (in the payload's extra), so
the node is still found, and deleted, by the id the caller holds."""
FILE_PATH = "file_path"
"""The metadata key LlamaIndex's file readers (``SimpleDirectoryReader``) put a file's path in."""
FILE_STATS = ("file_size", "last_modified_date", "creation_date")
"""The reader's metadata that changes when a file is rewritten."""
NODE_NAMESPACE = uuid.UUID("2c6d0f4e-8a1b-5c3d-9e7f-4b5a6c7d8e9f")
MAX_SEEN = 65536
"""Document keys a store remembers writing (least recently written forgotten first)."""


@dataclass
class _Seen:
    """What a store wrote of one document key: the file stats and document hashes."""

    stamp: tuple[Any, ...]
    versions: set[str | None]


@dataclass
class _Source:
    """What one `add` writes of one document key."""

    stable: bool
    """The key is the document's own id (one document a key), not a file many may share."""
    stamp: tuple[Any, ...]
    versions: set[str | None] = field(default_factory=set)


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
        path / url / api_key / client / location: where it lives (as `Collection`; ``location``
            is all four in one `minilm_qdrant.Location`); default in memory.
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
    _seen: OrderedDict[str, _Seen] = PrivateAttr(default_factory=OrderedDict)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

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
        location: Location | None = None,
        collection: Collection | None = None,
        fusion: Fusion = "dbsf",
        tenant: str | None = None,
        **collection_kwargs: Any,
    ) -> None:
        if collection is None:
            embedder = MiniLMEmbedding(model_name, backend=backend).embedder \
                if model_name else None
            collection = Collection(collection_name, embedder, backend=backend, tenant=tenant,
                                    location=location or Location(path, url, api_key, client),
                                    **collection_kwargs)
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
        """Write nodes through the core; the ids they are stored under, in order: a node's
        own id, or for a random one (LlamaIndex's default) an id derived from its document's
        key, place and text, so the same documents added again write the same points. A
        document added again replaces its nodes of before that are not written again. The
        embeddings LlamaIndex made (of the node's embed content: its text with the metadata it
        chose) are used as they are once one is checked against the collection's model
        (`CollectionMismatch` otherwise); nodes without one are embedded by the core."""
        stored, sources = _prepare(nodes)
        with self._lock:
            given = [n for n in stored if n.node.embedding is not None]
            by_id = {n.node.node_id: n.node for n in given}
            if given:
                self._collection.upsert(
                    (n.document() for n in given),
                    vectors={i: n.embedding for i, n in by_id.items()},  # type: ignore[misc]
                    embedded_text=lambda d: by_id[str(d.id)].get_content(MetadataMode.EMBED))
            bare = [n for n in stored if n.node.embedding is None]
            if bare:
                self._collection.upsert(n.document() for n in bare)
            replaced = self._replaced(sources)
            if replaced:
                scope = self._collection.scope
                self._collection.delete(_stale(
                    replaced, [scope.id_of(n.node.node_id) for n in stored]))
        return [n.node.node_id for n in stored]

    def _replaced(self, sources: dict[str, _Source]) -> list[str]:
        """The document keys whose nodes of before this write are stale: a key this store
        has not written yet (a rerun's first sight of it), or written with other versions of
        its document (other hashes; for a file, other file stats: a new read of it rather
        than the next part or batch of the same read)."""
        replaced = []
        for key, source in sources.items():
            seen = self._seen.get(key)
            same_read = seen is not None and bool(
                source.versions & seen.versions
                or (not source.stable and source.stamp == seen.stamp))
            if same_read:
                assert seen is not None
                seen.versions |= source.versions
                self._seen.move_to_end(key)
            else:
                replaced.append(key)
                self._seen[key] = _Seen(source.stamp, set(source.versions))
                self._seen.move_to_end(key)
                while len(self._seen) > MAX_SEEN:
                    self._seen.popitem(last=False)
        return replaced

    def delete(self, ref_doc_id: str, **delete_kwargs: Any) -> None:
        """Delete every node of the source document ``ref_doc_id``: its LlamaIndex document
        id, or its stable key (a file's ``file_path``)."""
        with self._lock:
            self._collection.delete(_ref_doc([ref_doc_id]))
            self._seen.pop(ref_doc_id, None)

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
        with self._lock:
            self._collection.delete(models.Filter())
            self._seen.clear()

    # --- reads --------------------------------------------------------------------------

    def get_nodes(
        self, node_ids: list[str] | None = None, filters: MetadataFilters | None = None,
    ) -> list[BaseNode]:
        """Nodes by id (in the order asked), by metadata filters, or both."""
        if node_ids == []:
            return []
        if filters is None and node_ids is not None:
            found = {str(d.id): d for d in self._collection.get(node_ids)}
            missing = [i for i in node_ids if i not in found]
            if missing:  # ids LlamaIndex gave nodes stored under derived ones
                for d in self._collection.find(models.Filter(must=[_given(missing)])):
                    found.setdefault(str(d.extra.get(GIVEN_KEY)), d)
            return [_node(found[i]) for i in dict.fromkeys(node_ids) if i in found]
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


@dataclass
class _Stored:
    """A node as it is stored (its id derived where it was random) and what it came as."""

    node: BaseNode
    given_id: str
    key: str | None

    def document(self) -> Document:
        node = self.node
        saved = node_to_metadata_dict(node, remove_text=True, flat_metadata=False)
        extra = {k: saved[k] for k in NODE_KEYS if k in saved}
        if node.source_node is None and isinstance(node, NodeDocument):  # its own document
            extra["ref_doc_id"] = self.given_id  # (as LlamaIndex's ingestion pipeline takes it)
        if self.key is not None:
            extra[DOC_KEY] = self.key
        if self.given_id != node.node_id:
            extra[GIVEN_KEY] = self.given_id
        return Document(node.get_content(metadata_mode=MetadataMode.NONE), dict(node.metadata),
                        id=node.node_id, extra=extra)


def _prepare(nodes: Sequence[BaseNode]) -> tuple[list[_Stored], dict[str, _Source]]:
    """Nodes as stored (copies: the caller's nodes are left as they are) and what is written
    of each document key. Random node ids are replaced, and the relationships between the
    nodes written together (previous, next, parent, child) follow."""
    keyed = [(node, *_doc_key(node)) for node in nodes]
    renamed = {node.node_id: _derived_id(key, node)
               for node, key, _ in keyed if _is_random(node.node_id)}
    stored: list[_Stored] = []
    sources: dict[str, _Source] = {}
    for node, key, stable in keyed:
        copy = node.model_copy()
        copy.id_ = renamed.get(node.node_id, node.node_id)
        copy.relationships = {r: _renamed(info, renamed) if r != NodeRelationship.SOURCE
                              else info for r, info in node.relationships.items()}
        stored.append(_Stored(copy, node.node_id, key))
        if key is not None:
            meta = _source_metadata(node)
            source = sources.setdefault(
                key, _Source(stable, tuple(meta.get(k) for k in FILE_STATS)))
            source.versions.add(node.source_node.hash if node.source_node else node.hash)
    return stored, sources


def _doc_key(node: BaseNode) -> tuple[str | None, bool]:
    """The stable key of a node's document, and whether it is the document's own id: the
    document id where it is not random (``filename_as_id``, or the caller's), else the file
    the reader read (``file_path``), else the document's hash (its text and metadata). A
    node of no document (no source, not a `Document` itself) has none."""
    source = node.source_node
    if source is None and not isinstance(node, NodeDocument):
        return None, False
    doc_id = source.node_id if source is not None else node.node_id
    if doc_id and not _is_random(doc_id):
        return doc_id, True
    path = _source_metadata(node).get(FILE_PATH)
    if isinstance(path, str) and path:
        return path, False
    version = source.hash if source is not None else node.hash
    return (f"hash:{version}", False) if version else (None, False)


def _source_metadata(node: BaseNode) -> dict[str, Any]:
    """The metadata of the node's document (what a node parser leaves of it in the node)."""
    source = node.source_node
    return {**((source.metadata or {}) if source is not None else {}), **node.metadata}


def _derived_id(key: str | None, node: BaseNode) -> str:
    """A node's id from its document key, its place in the document and its text."""
    text = node.get_content(metadata_mode=MetadataMode.NONE)
    name = "\x00".join([key or "", node.get_type(), str(getattr(node, "start_char_idx", None)),
                        str(getattr(node, "end_char_idx", None)), text])
    return str(uuid.uuid5(NODE_NAMESPACE, name))


def _is_random(node_id: str | None) -> bool:
    """Whether an id is a random UUID (version 4), as LlamaIndex gives documents and nodes."""
    try:
        return node_id is not None and uuid.UUID(node_id).version == 4 and \
            str(uuid.UUID(node_id)) == node_id
    except (ValueError, TypeError, AttributeError):
        return False


def _renamed(
    info: RelatedNodeInfo | list[RelatedNodeInfo], renamed: dict[str, str]
) -> RelatedNodeInfo | list[RelatedNodeInfo]:
    if isinstance(info, list):
        return [_renamed(i, renamed) for i in info]  # type: ignore[misc]
    if info.node_id in renamed:
        return info.model_copy(update={"node_id": renamed[info.node_id]})
    return info


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
    """Nodes of these documents: by LlamaIndex document id or by stable document key."""
    return models.Filter(should=[
        models.FieldCondition(key=key, match=models.MatchAny(any=list(ids)))
        for key in (REF_DOC_KEY, f"extra.{DOC_KEY}")])


def _given(node_ids: list[str]) -> models.FieldCondition:
    """Nodes stored under derived ids, by the random ids they were given."""
    return models.FieldCondition(key=f"extra.{GIVEN_KEY}",
                                 match=models.MatchAny(any=list(node_ids)))


def _stale(keys: list[str], written: list[str]) -> models.Filter:
    """The nodes of these document keys but the points just written. Nodes LlamaIndex wrote
    before stores kept document keys count too (by file path or document id), so a rerun
    also clears the duplicates of earlier versions."""
    match = models.MatchAny(any=list(keys))
    legacy = models.Filter(
        must=[models.IsEmptyCondition(is_empty=models.PayloadField(key=f"extra.{DOC_KEY}")),
              models.Filter(should=[
                  models.FieldCondition(key=REF_DOC_KEY, match=match),
                  models.FieldCondition(key=f"metadata.{FILE_PATH}", match=match)])],
        must_not=[models.IsEmptyCondition(is_empty=models.PayloadField(
            key="extra._node_type"))])
    return models.Filter(
        should=[models.FieldCondition(key=f"extra.{DOC_KEY}", match=match), legacy],
        must_not=[models.HasIdCondition(has_id=list(written))])


def _select(
    collection: Collection, node_ids: list[str] | None, filters: MetadataFilters | None,
    doc_ids: list[str] | None = None,
) -> models.Filter | None:
    """Node ids (as the collection's point ids: a tenant's own), metadata filters and source
    documents, all to hold."""
    must: list[Any] = []
    if node_ids is not None:
        must.append(models.Filter(should=[
            models.HasIdCondition(has_id=[collection.scope.id_of(i) for i in node_ids]),
            _given(node_ids)]))
    metadata = to_qdrant(filters)
    if metadata is not None:
        must.append(metadata)
    if doc_ids is not None:
        must.append(_ref_doc(doc_ids))
    return models.Filter(must=must) if must else None

