"""LlamaIndex's default pipeline (SentenceSplitter: nodes of 1,024 tokens, four times what
MiniLM reads) into `MiniLMVectorStore`: every window of every node embedded, and a query
returns the passage that answered."""

from __future__ import annotations

import json
from pathlib import Path

from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.vector_stores.minilm import MiniLMVectorStore

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def test_default_nodes_of_1024_tokens_are_embedded_whole(store: MiniLMVectorStore) -> None:
    text = "\n\n".join(f"{r['title']}\n{r['text']}" for r in ROWS)  # ~5,000 tokens
    index = VectorStoreIndex.from_documents(
        [Document(text=text, id_="programme")],
        storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=store.embed_model)
    points = [p for page in store.client.engine.scroll("talks", 64) for p in page]
    assert len(points) >= 4  # SentenceSplitter's 1,024-token nodes
    assert all(p.windows is not None for p in points)
    long = sum(len(p.windows) >= 3 for p in points if p.windows is not None)
    assert long >= len(points) - 1  # every node but the last is ~1,024 tokens: 3+ windows
    retriever = index.as_retriever(similarity_top_k=1)
    good = 0
    for r in ROWS:
        found = retriever.retrieve(r["title"])[0]
        node = found.node
        whole = store.get_nodes(node_ids=[node.node_id])[0]
        passage = node.get_content()
        assert passage in whole.get_content() and len(passage) < len(whole.get_content())
        start = text.find(f"{r['title']}\n")
        assert node.start_char_idx is not None and node.end_char_idx is not None
        assert text[node.start_char_idx:node.end_char_idx] == passage  # in the source document
        good += node.start_char_idx < start + len(r["text"]) and start < node.end_char_idx
    assert good >= 0.9 * len(ROWS)
