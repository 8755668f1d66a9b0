"""`MiniLMEmbedding` with `VectorStoreIndex` over llama-index's `QdrantVectorStore`, local mode."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.embeddings.minilm import MiniLMEmbedding
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

pytestmark = pytest.mark.filterwarnings("ignore:Payload indexes have no effect in the local Qdrant")

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl"
QUESTION = "How should I set M and ef_search on an HNSW index?"


def _documents() -> list[Document]:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    return [
        Document(text=f"{r['title']}\n{r['text']}", id_=r["id"],
                 metadata={"title": r["title"], "track": r["track"]})
        for r in rows
    ]


@pytest.fixture
def settings_embed_model(embed_model: MiniLMEmbedding) -> Iterator[MiniLMEmbedding]:
    """Set `Settings.embed_model` for one test, then restore what was there."""
    previous = Settings._embed_model
    Settings.embed_model = embed_model
    yield embed_model
    Settings._embed_model = previous


def _store(client: QdrantClient, name: str) -> StorageContext:
    return StorageContext.from_defaults(
        vector_store=QdrantVectorStore(collection_name=name, client=client)
    )


def test_retriever_returns_the_right_node(
    client: QdrantClient, embed_model: MiniLMEmbedding
) -> None:
    index = VectorStoreIndex.from_documents(
        _documents(), storage_context=_store(client, "talks"), embed_model=embed_model
    )
    assert client.count("talks").count == 36
    nodes = index.as_retriever(similarity_top_k=3).retrieve(QUESTION)
    assert nodes[0].node.ref_doc_id == "s02"
    assert nodes[0].node.metadata["title"].startswith("Tuning HNSW Graphs")
    assert nodes[0].score is not None and nodes[0].score >= nodes[1].score


def test_settings_embed_model_is_used(
    client: QdrantClient, settings_embed_model: MiniLMEmbedding
) -> None:
    assert Settings.embed_model is settings_embed_model
    index = VectorStoreIndex.from_documents(
        _documents(), storage_context=_store(client, "talks")
    )
    assert index._embed_model is settings_embed_model
    [hit] = index.as_retriever(similarity_top_k=1).retrieve(
        "Which talk covers stopping prompt injection attacks?"
    )
    assert hit.node.ref_doc_id == "s09"
