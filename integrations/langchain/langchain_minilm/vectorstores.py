"""A `langchain_qdrant.QdrantVectorStore` over a collection made by the core `Collection`.

Two things differ from a plain ``QdrantVectorStore``: the collection is opened through the core
`Collection` first (same fingerprint check, `CollectionMismatch` on another model), and
relevance scores are right for dot-product collections. langchain-qdrant maps a DOT score
``s`` to ``1 - s`` (for ``s > 0``), so the closest document would get the lowest relevance;
here normalised vectors give ``(1 + s) / 2`` and unnormalised ones a logistic of ``s``: both
in ``[0, 1]``, higher = more relevant.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import QdrantClient, models

from langchain_minilm.embeddings import MiniLMEmbeddings
from minilm_qdrant import Collection

CONTENT_KEY = "text"
"""Payload key of the text, as the core `Collection` writes it."""
METADATA_KEY = "metadata"
"""Payload key of the metadata, as the core `Collection` writes it."""

_DISTANCES = {
    "dot": models.Distance.DOT,
    "cosine": models.Distance.COSINE,
    "euclid": models.Distance.EUCLID,
}


class MiniLMQdrantVectorStore(QdrantVectorStore):
    """A ``QdrantVectorStore`` whose relevance scores grow with similarity for DOT too.

    Open one with `minilm_vector_store` rather than directly.
    """

    def __init__(self, *args: Any, normalized: bool = True, **kwargs: Any) -> None:
        """As ``QdrantVectorStore``; ``normalized``: the stored vectors are unit length."""
        super().__init__(*args, **kwargs)
        self.normalized = normalized

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        if self.distance == models.Distance.DOT:
            return _unit_dot_relevance if self.normalized else _logistic_relevance
        return super()._select_relevance_score_fn()


def minilm_vector_store(
    client: QdrantClient,
    collection_name: str,
    embedding: MiniLMEmbeddings | None = None,
    *,
    create: bool = False,
    **collection_kwargs: Any,
) -> MiniLMQdrantVectorStore:
    """Open a LangChain vector store on a minilm-qdrant collection.

    Args:
        client: the Qdrant client (server, cluster or local mode) holding the collection.
        collection_name: the collection, as made by the core `Collection`.
        embedding: the embeddings to query with; default: the model recorded in the
            collection's fingerprint.
        create: create the collection (with its fingerprint) when missing.
        **collection_kwargs: passed to the core `Collection` (e.g. ``options``).

    Raises:
        CollectionMismatch: the collection holds another model's vectors.
        CollectionNotFound: it does not exist and ``create`` is false.
    """
    core = Collection(
        collection_name,
        embedding.embedder if embedding is not None else None,
        client=client,
        create=create,
        **collection_kwargs,
    )
    # The core `Collection` only validated (or created) the collection: the client stays open
    # for the vector store, so `core` is not closed here.
    embedding = embedding or MiniLMEmbeddings.from_embedder(core.embedder)
    spec = core.embedder.spec
    return MiniLMQdrantVectorStore(
        client=client,
        collection_name=collection_name,
        embedding=embedding,
        retrieval_mode=RetrievalMode.DENSE,
        content_payload_key=CONTENT_KEY,
        metadata_payload_key=METADATA_KEY,
        distance=_DISTANCES[spec.distance],
        validate_collection_config=False,  # the fingerprint check above is stricter
        normalized=spec.normalize,
    )


def _unit_dot_relevance(score: float) -> float:
    """Dot product of unit vectors (a cosine in ``[-1, 1]``) -> ``[0, 1]``."""
    return min(1.0, max(0.0, (1.0 + score) / 2.0))


def _logistic_relevance(score: float) -> float:
    """Unbounded dot product -> ``(0, 1)``, order preserved."""
    return 0.5 * (1.0 + math.tanh(score / 2.0))
