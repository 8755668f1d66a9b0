"""LlamaIndex's quick start, as a user runs it, in a process of its own: read a folder with
``SimpleDirectoryReader`` (random document and node ids), index it with
``VectorStoreIndex.from_documents`` into a `MiniLMVectorStore` on a persistent path, and print
one JSON line: the collection's point count, its ids and texts, and the top node for each
query given.

Run: ``python llamaindex_quickstart_child.py DOCS STORE [QUERY...]``.
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.core import SimpleDirectoryReader, StorageContext, VectorStoreIndex
from llama_index.vector_stores.minilm import MiniLMVectorStore


def main(docs: str, path: str, queries: list[str]) -> None:
    documents = SimpleDirectoryReader(docs).load_data()
    store = MiniLMVectorStore("docs", model_name="all-MiniLM-L6-v2", path=path)
    index = VectorStoreIndex.from_documents(
        documents, storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=store.embed_model)
    retriever = index.as_retriever(similarity_top_k=1)
    stored = store.client.find()
    print(json.dumps({
        "count": store.client.count(),
        "ids": sorted(str(d.id) for d in stored),
        "texts": sorted(d.text for d in stored),
        "top": {q: retriever.retrieve(q)[0].node.get_content() for q in queries},
    }))
    store.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3:])
