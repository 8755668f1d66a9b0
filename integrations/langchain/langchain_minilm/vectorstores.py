"""`MiniLMVectorStore`: a LangChain `VectorStore` over the core `Collection`, on any engine.

It translates LangChain calls into `Collection` calls and holds no retrieval logic: writes go
through `Collection.upsert` (deterministic ids, bounded and retried batches, fingerprint
check, BM25 vectors beside the dense ones), searches through `Collection.search` (hybrid,
dense or sparse, fused and MMR-ranked inside Qdrant), reads and deletes by the caller's ids.
A collection filled by the CLI is read here and the other way round (same payload layout).
Async methods are LangChain's own thin wrappers that run this same code in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import numpy as np
from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore
from langchain_qdrant import RetrievalMode
from qdrant_client import models

from langchain_minilm.embeddings import MiniLMEmbeddings
from minilm_qdrant import Collection, CollectionMismatch, Hit, Location
from minilm_qdrant import Document as CoreDocument
from minilm_qdrant.collection import DEFAULT_COLLECTION
from minilm_qdrant.engines import Fusion, Mode

Filter = models.Filter | dict[str, Any] | None


class MiniLMVectorStore(VectorStore):
    """LangChain vector store on a minilm-qdrant collection (embedded Qdrant Edge by default).

    Example:
        ```python
        from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore

        store = MiniLMVectorStore(embedding=MiniLMEmbeddings(model="all-MiniLM-L6-v2"),
                                  collection_name="docs", path="./qdrant_data")
        store.add_texts(["HNSW in practice"], metadatas=[{"day": 1}], ids=["s1"])
        store.similarity_search("vector indexes", k=3, filter={"day": 1})
        ```

    Args:
        embedding: the embeddings; default: the model recorded in an existing collection.
        collection_name: the collection (created, with its fingerprint, when missing).
        path / url / api_key / client / location: where it lives (as `Collection`; ``location``
            is all four in one `minilm_qdrant.Location`); default in memory.
        collection: an open core `Collection` to use as it is (then the above are not given).
        retrieval_mode: ``RetrievalMode.HYBRID`` / ``DENSE`` / ``SPARSE`` (or their strings);
            default: the collection's own (hybrid where it has BM25 sparse vectors).
        fusion: how hybrid fuses in Qdrant, ``dbsf`` (default) or ``rrf``.
        tenant: confine every text added, searched, got or deleted to this tenant (of a
            tenanted collection: see minilm_qdrant's README, "Tenants").
        **collection_kwargs: passed to `Collection` (``options``, ``batch_size``, ...).
    """

    def __init__(
        self,
        embedding: MiniLMEmbeddings | None = None,
        collection_name: str = DEFAULT_COLLECTION,
        *,
        path: str | None = None,
        url: str | None = None,
        api_key: str | None = None,
        client: Any | None = None,
        location: Location | None = None,
        collection: Collection | None = None,
        retrieval_mode: RetrievalMode | str | None = None,
        fusion: Fusion = "dbsf",
        tenant: str | None = None,
        **collection_kwargs: Any,
    ) -> None:
        if embedding is not None and not isinstance(embedding, MiniLMEmbeddings):
            raise TypeError(
                f"MiniLMVectorStore needs MiniLMEmbeddings, not {type(embedding).__name__}: "
                "its collections are fingerprinted for a minilm-qdrant model"
            )
        where = location or Location(path, url, api_key, client)
        if collection is None:
            collection = Collection(
                collection_name, embedding.embedder if embedding is not None else None,
                location=where, tenant=tenant, **collection_kwargs)
        elif where != Location() or location is not None or collection_kwargs:
            raise ValueError("give either collection= or where to open one (path, url...)")
        else:
            if embedding is not None:
                _check_model(embedding, collection)
            if tenant is not None:
                collection = collection.tenant(tenant)
        self.collection = collection
        self._embeddings = embedding or MiniLMEmbeddings.from_embedder(collection.embedder)
        mode = retrieval_mode.value if isinstance(retrieval_mode, RetrievalMode) \
            else retrieval_mode
        self.mode: Mode = collection.resolve_mode(mode)  # type: ignore[arg-type]
        self.fusion: Fusion = fusion

    def __repr__(self) -> str:
        return f"MiniLMVectorStore({self.collection!r}, mode={self.mode!r})"

    @property
    def embeddings(self) -> MiniLMEmbeddings:
        return self._embeddings

    def close(self) -> None:
        """Release the store (and the embedded store's lock)."""
        self.collection.close()

    # --- writes -------------------------------------------------------------------------

    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        batch_size: int | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and store texts (any iterable, streamed in bounded batches); returns their
        ids: yours, or for a text without one an id derived from the text, so adding the
        same texts again changes nothing. ``batch_size`` (LangChain's indexing API passes
        it) is accepted and left to the collection, which writes in its own bounded
        batches."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        if isinstance(texts, Sequence):
            for name, given in (("metadatas", metadatas), ("ids", ids)):
                if given is not None and len(given) != len(texts):
                    raise ValueError(f"{len(texts)} texts but {len(given)} {name}")
        written: list[str] = []
        self.collection.upsert(self._documents(texts, metadatas, ids, written))
        if (metadatas is not None and len(metadatas) != len(written)) or (
                ids is not None and len(ids) != len(written)):
            raise ValueError(f"{len(written)} texts were given with "
                             f"{len(metadatas or ids or [])} metadatas or ids")
        return written

    @staticmethod
    def _documents(
        texts: Iterable[str], metadatas: list[dict[str, Any]] | None,
        ids: Sequence[str | None] | None, out: list[str],
    ) -> Iterator[CoreDocument]:
        for i, text in enumerate(texts):
            if (metadatas is not None and i >= len(metadatas)) or (
                    ids is not None and i >= len(ids)):
                raise ValueError("more texts than metadatas or ids")
            given = ids[i] if ids is not None else None
            # no id: the point id of the text (stable, so re-adding it changes nothing)
            doc_id = given if given is not None else CoreDocument(text).point_id
            out.append(doc_id)
            yield CoreDocument(text, dict(metadatas[i]) if metadatas else {}, id=doc_id)

    def delete(
        self, ids: list[str] | None = None, *, filter: Filter = None, **kwargs: Any
    ) -> bool | None:
        """Delete by your ids, or by ``filter``; ids not stored are ignored. True when
        something was deleted, False when nothing matched (a delete that fails raises).
        LangChain's indexing API deletes only ids it wrote, so it sees True; a store emptied
        behind its record manager's back answers False, which it reports as a failed delete:
        clear the record manager too."""
        if kwargs:
            raise TypeError(f"unexpected arguments: {sorted(kwargs)}")
        if (ids is None) == (filter is None):
            raise ValueError("give ids or a filter (one of them)")
        where = _filter(filter)
        deleted = self.collection.delete(ids if where is None else where)  # type: ignore[arg-type]
        return deleted > 0

    # --- reads --------------------------------------------------------------------------

    def get_by_ids(self, ids: Sequence[str], /) -> list[Document]:
        """The stored documents with these ids, in the order asked (missing ones absent)."""
        return [Document(page_content=d.text, metadata=d.metadata, id=str(d.id))
                for d in self.collection.get(list(ids))]

    def similarity_search_with_score(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Documents and the collection's scores (higher = closer), in the store's mode."""
        hits = self.collection.search(query, k, mode=self.mode, fusion=self.fusion,
                                      query_filter=_filter(filter), **kwargs)
        return [(_document(h), h.score) for h in hits]

    def similarity_search(
        self, query: str, k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter, **kwargs)]

    def similarity_search_with_score_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[tuple[Document, float]]:
        """Dense search with an already embedded query."""
        hits = self.collection.search_vector(np.asarray(embedding, dtype=np.float32), k,
                                             mode="dense", query_filter=_filter(filter), **kwargs)
        return [(_document(h), h.score) for h in hits]

    def similarity_search_by_vector(
        self, embedding: list[float], k: int = 4, filter: Filter = None, **kwargs: Any
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score_by_vector(
            embedding, k, filter, **kwargs)]

    def max_marginal_relevance_search(
        self, query: str, k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        filter: Filter = None, **kwargs: Any,
    ) -> list[Document]:
        """MMR inside Qdrant over ``fetch_k`` candidates of the store's mode; ``lambda_mult``
        as in LangChain: 1 = relevance only, 0 = diversity only."""
        hits = self.collection.search(
            query, k, mode=self.mode, fusion=self.fusion, prefetch=fetch_k,
            diversity=_diversity(lambda_mult), query_filter=_filter(filter), **kwargs)
        return [_document(h) for h in hits]

    def max_marginal_relevance_search_by_vector(
        self, embedding: list[float], k: int = 4, fetch_k: int = 20, lambda_mult: float = 0.5,
        filter: Filter = None, **kwargs: Any,
    ) -> list[Document]:
        hits = self.collection.search_vector(
            np.asarray(embedding, dtype=np.float32), k, mode="dense", prefetch=fetch_k,
            diversity=_diversity(lambda_mult), query_filter=_filter(filter), **kwargs)
        return [_document(h) for h in hits]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Scores -> relevance in [0, 1], higher = more relevant, for the store's mode."""
        if self.mode == "sparse":
            return lambda s: max(0.0, s) / (1.0 + max(0.0, s))  # BM25: unbounded above
        if self.mode == "hybrid":
            # 2 sides, each normalised (DBSF: mean ± 3 sigma -> 0-1, an outlier above is 1 here)
            top = 2.0 if self.fusion == "dbsf" else 2.0 / 61
            return lambda s: _clamp(s / top)
        if self.collection.embedder.spec.normalize:
            return lambda s: _clamp((1.0 + s) / 2.0)  # a cosine in [-1, 1]
        return lambda s: 0.5 * (1.0 + math.tanh(s / 2.0))

    # --- constructors -------------------------------------------------------------------

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict[str, Any]] | None = None,
        *,
        ids: list[str] | None = None,
        collection_name: str = DEFAULT_COLLECTION,
        **kwargs: Any,
    ) -> MiniLMVectorStore:
        """A store on ``collection_name`` (``path=``, ``url=``... as the constructor) holding
        ``texts``."""
        store = cls(embedding, collection_name, **kwargs)  # type: ignore[arg-type]
        store.add_texts(texts, metadatas, ids=ids)
        return store


def _document(hit: Hit) -> Document:
    """A hit as LangChain's Document: ``page_content`` is the passage that answered (the
    whole text where the document is one window); for a part of a longer text, metadata
    ``_passage`` gives its character offsets (the whole text: ``get_by_ids([doc.id])``)."""
    part = hit.passage
    if part is None or (part.start, part.end) == (0, len(hit.text)):
        return Document(page_content=hit.text, metadata=hit.metadata, id=str(hit.id))
    return Document(page_content=part.text, id=str(hit.id), metadata={
        **hit.metadata, "_passage": {"start": part.start, "end": part.end}})


def _diversity(lambda_mult: float) -> float:
    if not 0.0 <= lambda_mult <= 1.0:
        raise ValueError(f"lambda_mult must be between 0 and 1, got {lambda_mult}")
    return 1.0 - lambda_mult


def _clamp(x: float) -> float:
    return min(1.0, max(0.0, x))


def _filter(flt: Filter) -> models.Filter | None:
    """A qdrant Filter as it is; a dict ``{key: value}`` as metadata equalities (a list value
    matches any of its items)."""
    if flt is None or isinstance(flt, models.Filter):
        return flt
    if not isinstance(flt, dict):
        raise TypeError(f"filter must be a qdrant_client.models.Filter or a dict, "
                        f"not {type(flt).__name__}")
    must: list[Any] = []
    for key, value in flt.items():
        match: Any = models.MatchAny(any=list(value)) if isinstance(value, (list, tuple)) \
            else models.MatchValue(value=value)
        must.append(models.FieldCondition(key=f"metadata.{key}", match=match))
    return models.Filter(must=must)


def _check_model(embedding: MiniLMEmbeddings, collection: Collection) -> None:
    """Refuse embeddings that are not the collection's model, naming what differs."""
    mine, theirs = embedding.embedder.fingerprint, collection.embedder.fingerprint
    if mine == theirs:
        return
    differ = ", ".join(f"{k} {mine.get(k)!r} against {theirs.get(k)!r}"
                       for k in sorted(set(mine) | set(theirs)) if mine.get(k) != theirs.get(k))
    raise CollectionMismatch(
        f"the embeddings are not the model of collection {collection.name!r}: {differ} (the "
        "embeddings' against the collection's); omit embedding= to use the collection's own")
