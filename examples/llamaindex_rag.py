"""Retrieval for a RAG query engine with LlamaIndex, offline on the bundled all-MiniLM-L6-v2.

`MiniLMEmbedding` is set as `Settings.embed_model`; the conference sessions are indexed in
llama-index's `QdrantVectorStore` (qdrant-client local mode) through `VectorStoreIndex`, and a
retriever finds the passages for a question.
Run: ``python examples/llamaindex_rag.py "your question"``.
"""

from __future__ import annotations

import json
import os
import sys
import warnings
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llama_index.core import Document, Settings, StorageContext, VectorStoreIndex
from llama_index.embeddings.minilm import MiniLMEmbedding
from llama_index.vector_stores.qdrant import QdrantVectorStore
from qdrant_client import QdrantClient

CORPUS = Path(__file__).with_name("conference.jsonl")
QUESTION = "How can I make embeddings take less memory in my vector database?"

# Local mode has no payload indexes; llama-index asks for one and local Qdrant says so.
warnings.filterwarnings("ignore", message="Payload indexes have no effect")


def main(question: str) -> None:
    Settings.embed_model = MiniLMEmbedding(model_name="all-MiniLM-L6-v2", embed_batch_size=16)
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    documents = [
        Document(
            text=f"{r['title']}\n{r['text']}", id_=r["id"],
            metadata={"speaker": r["speaker"], "track": r["track"]},
        )
        for r in rows
    ]
    client = QdrantClient(location=":memory:")  # or path="./qdrant_data", or url=...
    vector_store = QdrantVectorStore(collection_name="talks", client=client)
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=vector_store)
    )
    print(f"indexed {len(documents)} sessions")

    nodes = index.as_retriever(similarity_top_k=3).retrieve(question)
    print(f"\nQ: {question}\n")
    for hit in nodes:
        meta = hit.node.metadata
        print(f"[{hit.score:.3f}] {meta['speaker']} ({meta['track']})")
        print(f"        {hit.node.get_content()[:110].replace(chr(10), ' ')}...")

    # An LLM would go here: set Settings.llm (e.g. llama-index-llms-openai or -ollama), then
    #   answer = index.as_query_engine(similarity_top_k=3).query(question)
    client.close()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or QUESTION)
