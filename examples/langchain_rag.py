"""Retrieval for a RAG chain with LangChain, offline on the bundled all-MiniLM-L6-v2.

`MiniLMVectorStore` is a LangChain vector store over a minilm-qdrant collection on the
embedded Qdrant Edge store: texts go in through the core (deterministic ids, BM25 sparse
vectors beside the dense ones), and the retriever's searches are hybrid, fused inside Qdrant.
Adding the same texts again leaves the same points (for files that change, LangChain's
indexing API: see integrations/langchain/README.md). The same collection answers
`minilm-qdrant search --path DIR --collection talks`.
Run: ``python examples/langchain_rag.py "your question"``.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore

CORPUS = Path(__file__).with_name("conference.jsonl")
QUESTION = "How do I stop users from hijacking my LLM app with malicious instructions?"


def main(question: str, path: str | None = None) -> None:
    rows = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]
    with tempfile.TemporaryDirectory() as tmp:
        texts = [f"{r['title']} {r['text']}" for r in rows]
        metadatas = [{"speaker": r["speaker"], "track": r["track"]} for r in rows]
        store = MiniLMVectorStore.from_texts(
            texts, MiniLMEmbeddings(model_name="all-MiniLM-L6-v2"), metadatas=metadatas,
            ids=[r["id"] for r in rows],
            collection_name="talks", path=path or tmp,  # e.g. "./qdrant_data"
        )
        print(f"indexed {store.collection.count()} sessions")
        store.add_texts(texts, metadatas, ids=[r["id"] for r in rows])  # a rerun: same points
        print(f"indexed {store.collection.count()} sessions")

        retriever = store.as_retriever(search_kwargs={"k": 3})
        passages = retriever.invoke(question)

        print(f"\nQ: {question}\n")
        for doc, relevance in store.similarity_search_with_relevance_scores(question, k=3):
            print(f"[{relevance:.3f}] {doc.metadata['speaker']} ({doc.metadata['track']})")
            print(f"        {doc.page_content[:110]}...")

        context = "\n\n".join(p.page_content for p in passages)
        print(f"\n{len(context)} characters of context for the LLM")
        # An LLM would go here, e.g. with langchain-openai or langchain-ollama:
        #   answer = llm.invoke(f"Answer from this context:\n{context}\n\nQuestion: {question}")
        store.close()


if __name__ == "__main__":
    main(" ".join(sys.argv[1:]) or QUESTION)
