"""Retrieval for a RAG query engine with LlamaIndex, offline on the bundled all-MiniLM-L6-v2.

`MiniLMVectorStore` is a LlamaIndex vector store over a minilm-qdrant collection on the
embedded Qdrant Edge store: nodes go in through the core (LlamaIndex's random node ids
replaced by ids derived from the document, the embeddings LlamaIndex made checked against
the collection's model, BM25 sparse vectors beside them) and the retriever's default search is
hybrid, fused inside Qdrant. Indexing again leaves the same points (for folders read with
SimpleDirectoryReader too: see integrations/llama-index-vector-stores/README.md). The same
collection answers `minilm-qdrant search --path DIR --collection talks`.
Run: ``python examples/llamaindex_rag.py "your question"``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.vector_stores.minilm import MiniLMVectorStore

CORPUS = Path(__file__).with_name("conference.jsonl")
QUESTION = "How can I make embeddings take less memory in my vector database?"


def main(question: str, path: str | None = None) -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    documents = [
        Document(text=f"{r['title']}\n{r['text']}", id_=r["id"],
                 metadata={"speaker": r["speaker"], "track": r["track"]})
        for r in rows
    ]
    with tempfile.TemporaryDirectory() as tmp:
        store = MiniLMVectorStore("talks", model_name="all-MiniLM-L6-v2",
                                  path=path or tmp)  # e.g. "./qdrant_data"
        for _ in range(2):  # a rerun writes the same points: no duplicates
            index = VectorStoreIndex.from_documents(  # embedded with the collection's model
                documents, storage_context=StorageContext.from_defaults(vector_store=store),
                embed_model=store.embed_model)
            print(f"indexed {store.client.count()} sessions")

        nodes = index.as_retriever(similarity_top_k=3).retrieve(question)
        print(f"\nQ: {question}\n")
        for hit in nodes:
            meta = hit.node.metadata
            print(f"[{hit.score:.3f}] {meta['speaker']} ({meta['track']})")
            print(f"        {hit.node.get_content()[:110].replace(chr(10), ' ')}...")

        # An LLM would go here: set Settings.llm (e.g. llama-index-llms-openai or -ollama), then
        #   answer = index.as_query_engine(similarity_top_k=3).query(question)
        store.close()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or QUESTION)
