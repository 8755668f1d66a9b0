"""Retrieval for a RAG chain with LangChain, offline on the bundled all-MiniLM-L6-v2.

The core `Collection` ingests the conference sessions (fingerprinted collection, deterministic
ids); `minilm_vector_store` opens it as a LangChain vector store; a retriever finds the
passages for a question. Run: ``python examples/langchain_rag.py "your question"``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_minilm import MiniLMEmbeddings, minilm_vector_store
from qdrant_client import QdrantClient

from minilm_qdrant import Collection
from minilm_qdrant.readers import read_documents

CORPUS = Path(__file__).with_name("conference.jsonl")
QUESTION = "How do I stop users from hijacking my LLM app with malicious instructions?"


def main(question: str) -> None:
    client = QdrantClient(location=":memory:")  # or path="./qdrant_data", or url=...
    embeddings = MiniLMEmbeddings(model_name="all-MiniLM-L6-v2")
    report = Collection("talks", embeddings.embedder, client=client).upsert(
        read_documents(CORPUS)
    )
    print(f"indexed {report.written} sessions")

    store = minilm_vector_store(client, "talks", embeddings)  # fingerprint checked here
    retriever = store.as_retriever(search_kwargs={"k": 3})
    passages = retriever.invoke(question)

    print(f"\nQ: {question}\n")
    for doc, relevance in store.similarity_search_with_relevance_scores(question, k=3):
        print(f"[{relevance:.3f}] {doc.metadata['speaker']} ({doc.metadata['track']})")
        print(f"        {doc.page_content[:110]}...")

    context = "\n\n".join(p.page_content for p in passages)
    print(f"\n{len(context)} characters of context for the LLM")
    # An LLM would go here, e.g. with langchain-openai or langchain-ollama:
    #   answer = llm.invoke(f"Answer from this context only:\n{context}\n\nQuestion: {question}")
    client.close()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or QUESTION)
