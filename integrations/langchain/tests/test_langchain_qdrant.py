"""`MiniLMEmbeddings` in `langchain_qdrant.QdrantVectorStore`, and `minilm_vector_store` over
collections made by the core `Collection`, on qdrant-client's local mode."""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_minilm import MiniLMEmbeddings, MiniLMQdrantVectorStore, minilm_vector_store
from langchain_qdrant import QdrantVectorStore
from qdrant_client import QdrantClient, models

from minilm_qdrant import Collection, CollectionMismatch, CollectionNotFound, Embedder
from minilm_qdrant.readers import read_documents

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl"
QUESTION = "How should I set M and ef_search on an HNSW index?"
ANSWER = "s02"  # "Tuning HNSW Graphs for Billion-Scale Vector Indexes"


@pytest.fixture
def core_collection(client: QdrantClient, embeddings: MiniLMEmbeddings) -> Collection:
    """The conference corpus, ingested by the core collection manager."""
    talks = Collection("talks", embeddings.embedder, client=client)
    assert talks.upsert(read_documents(CORPUS)).written == 36
    return talks  # not closed: closing it would close the shared client


def test_plain_qdrant_vector_store_with_minilm_embeddings(embeddings: MiniLMEmbeddings) -> None:
    store = QdrantVectorStore.from_texts(
        ["HNSW graphs trade memory for recall.", "Sourdough needs a long, cold proof."],
        embeddings,
        metadatas=[{"topic": "search"}, {"topic": "baking"}],
        location=":memory:",
        collection_name="plain",
        distance=models.Distance.DOT,
    )
    [hit] = store.similarity_search("vector index tuning", k=1)
    assert hit.metadata["topic"] == "search"
    [hit] = store.as_retriever(search_kwargs={"k": 1}).invoke("bread recipe")
    assert hit.metadata["topic"] == "baking"


def test_helper_reads_a_core_collection(
    client: QdrantClient, core_collection: Collection
) -> None:
    store = minilm_vector_store(client, "talks")  # model from fingerprint
    assert isinstance(store, MiniLMQdrantVectorStore)
    assert store.embeddings is not None
    [doc] = store.similarity_search(QUESTION, k=1)
    assert doc.metadata["track"] == "Retrieval"
    assert doc.page_content.startswith("Tuning HNSW Graphs")
    retrieved = store.as_retriever(search_kwargs={"k": 3}).invoke(QUESTION)
    assert retrieved[0].page_content == doc.page_content
    # Same first hit as the core's own search.
    assert core_collection.search(QUESTION, k=1)[0].id == ANSWER


def test_relevance_scores_grow_with_similarity(
    client: QdrantClient, core_collection: Collection
) -> None:
    store = minilm_vector_store(client, "talks")
    raw = store.similarity_search_with_score(QUESTION, k=5)
    scored = store.similarity_search_with_relevance_scores(QUESTION, k=5)
    assert [d.page_content for d, _ in scored] == [d.page_content for d, _ in raw]
    relevance = [r for _, r in scored]
    assert relevance == sorted(relevance, reverse=True)  # best first, highest relevance
    assert all(0.0 <= r <= 1.0 for r in relevance)
    assert relevance[0] == pytest.approx((1 + raw[0][1]) / 2)
    assert scored[0][0].page_content.startswith("Tuning HNSW Graphs")
    # A threshold keeps the most relevant documents, not the least.
    kept = store.similarity_search_with_relevance_scores(
        QUESTION, k=5, score_threshold=relevance[1]
    )
    assert [d.page_content for d, _ in kept] == [d.page_content for d, _ in scored[:2]]


def test_documents_added_through_langchain_are_visible_to_the_core(
    client: QdrantClient, embeddings: MiniLMEmbeddings
) -> None:
    store = minilm_vector_store(client, "notes", embeddings, create=True)
    store.add_documents([
        LCDocument("Qdrant stores payloads next to vectors.", metadata={"n": 1}),
        LCDocument("A croissant is laminated dough.", metadata={"n": 2}),
    ])
    core = Collection("notes", embeddings.embedder, client=client, create=False)
    [hit] = core.search("vector database payload", k=1)
    assert hit.text == "Qdrant stores payloads next to vectors."
    assert hit.metadata == {"n": 1}


def test_model_mismatch_is_refused_before_weights_load(client: QdrantClient) -> None:
    # A collection made for another model (resolved from the registry; no weights needed).
    Collection("other", Embedder("multi-qa-MiniLM-L6-cos-v1"), client=client)
    with pytest.raises(CollectionMismatch, match="multi-qa-MiniLM-L6-cos-v1"):
        minilm_vector_store(client, "other", MiniLMEmbeddings(model_name="all-MiniLM-L6-v2"))


def test_missing_collection_is_not_created_unless_asked(
    client: QdrantClient, embeddings: MiniLMEmbeddings
) -> None:
    with pytest.raises(CollectionNotFound, match="does not exist"):
        minilm_vector_store(client, "missing", embeddings)
    assert not client.collection_exists("missing")
