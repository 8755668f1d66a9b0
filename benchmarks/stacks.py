"""One runner per stack: (model path, docs, queries, store dir) -> (seconds, top-10 ids).

The timed part is raw texts to searchable points (model load included); retrieval for
NDCG@10 runs after the clock stops, through each stack's own search call.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

Docs = list[dict[str, str]]
Result = tuple[float, dict[str, list[str]]]
MAX_TOKENS = 256


def langchain(model: str, docs: Docs, queries: dict[str, str], store: str) -> Result:
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore

    start = time.perf_counter()
    emb = HuggingFaceEmbeddings(model_name=model, encode_kwargs={"normalize_embeddings": True})
    emb._client.max_seq_length = MAX_TOKENS
    vs = QdrantVectorStore.from_texts(
        [d["text"] for d in docs], emb, metadatas=[{"doc": d["id"]} for d in docs],
        path=store, collection_name="bench",
    )
    seconds = time.perf_counter() - start
    run = {
        q: [h.metadata["doc"] for h in vs.similarity_search(t, k=10)] for q, t in queries.items()
    }
    return seconds, run


def llamaindex(model: str, docs: Docs, queries: dict[str, str], store: str) -> Result:
    from llama_index.core import Settings, StorageContext, VectorStoreIndex
    from llama_index.core.schema import TextNode
    from llama_index.embeddings.huggingface import HuggingFaceEmbedding
    from llama_index.vector_stores.qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient

    Settings.llm = None
    start = time.perf_counter()
    emb = HuggingFaceEmbedding(model_name=model, max_length=MAX_TOKENS)
    client = QdrantClient(path=store)
    ctx = StorageContext.from_defaults(vector_store=QdrantVectorStore("bench", client=client))
    nodes = [TextNode(text=d["text"], id_=f"00000000-0000-0000-0000-{i:012d}",
                      metadata={"doc": d["id"]}) for i, d in enumerate(docs)]
    index = VectorStoreIndex(nodes, storage_context=ctx, embed_model=emb)
    seconds = time.perf_counter() - start
    retriever = index.as_retriever(similarity_top_k=10)
    run = {q: [n.node.metadata["doc"] for n in retriever.retrieve(t)] for q, t in queries.items()}
    return seconds, run


def st_upload(model: str, docs: Docs, queries: dict[str, str], store: str) -> Result:
    from qdrant_client import QdrantClient, models
    from sentence_transformers import SentenceTransformer

    start = time.perf_counter()
    st = SentenceTransformer(model, device="cpu")
    st.max_seq_length = MAX_TOKENS
    vectors = st.encode([d["text"] for d in docs], batch_size=32, normalize_embeddings=True)
    client = QdrantClient(path=store)
    client.create_collection("bench", vectors_config=models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.DOT))
    client.upload_points("bench", [
        models.PointStruct(id=i, vector=v.tolist(), payload={"doc": d["id"]})
        for i, (d, v) in enumerate(zip(docs, vectors, strict=True))
    ])
    seconds = time.perf_counter() - start
    run = {}
    for q, t in queries.items():
        hits = client.query_points("bench", st.encode(t, normalize_embeddings=True).tolist(),
                                   limit=10, with_payload=True).points
        run[q] = [h.payload["doc"] for h in hits if h.payload]
    return seconds, run


def ours(backend: str) -> Callable[[str, Docs, dict[str, str], str], Result]:
    def runner(model: str, docs: Docs, queries: dict[str, str], store: str) -> Result:
        from minilm_qdrant import Collection, Document, Embedder

        start = time.perf_counter()
        embedder = Embedder("all-MiniLM-L6-v2", backend=backend)  # the defaults users get
        with Collection("bench", embedder, path=store) as coll:
            coll.upsert(Document(d["text"], {"doc": d["id"]}, id=d["id"]) for d in docs)
            seconds = time.perf_counter() - start
            run = {q: [str(h.id) for h in coll.search(t, k=10)] for q, t in queries.items()}
        return seconds, run

    return runner


def lc_minilm(backend: str) -> Callable[[str, Docs, dict[str, str], str], Result]:
    """The LangChain quick start on our store: ``MiniLMVectorStore.from_texts`` on the embedded
    store, then ``similarity_search`` (hybrid, the default)."""

    def runner(model: str, docs: Docs, queries: dict[str, str], store: str) -> Result:
        from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore

        start = time.perf_counter()
        vs = MiniLMVectorStore.from_texts(
            [d["text"] for d in docs], MiniLMEmbeddings(model="all-MiniLM-L6-v2", backend=backend),
            ids=[d["id"] for d in docs], path=store, collection_name="bench")
        seconds = time.perf_counter() - start
        run = {q: [str(h.id) for h in vs.similarity_search(t, k=10)] for q, t in queries.items()}
        vs.close()
        return seconds, run

    return runner


def li_minilm(backend: str) -> Callable[[str, Docs, dict[str, str], str], Result]:
    """LlamaIndex on our store: ``VectorStoreIndex`` over ``MiniLMVectorStore`` (embedded
    store), then the retriever (hybrid, the default)."""

    def runner(model: str, docs: Docs, queries: dict[str, str], store: str) -> Result:
        from llama_index.core import Settings, StorageContext, VectorStoreIndex
        from llama_index.core.schema import TextNode
        from llama_index.vector_stores.minilm import MiniLMVectorStore

        Settings.llm = None
        start = time.perf_counter()
        vs = MiniLMVectorStore("bench", model_name="all-MiniLM-L6-v2", backend=backend,
                               path=store)
        nodes = [TextNode(text=d["text"], id_=d["id"]) for d in docs]
        index = VectorStoreIndex(nodes, storage_context=StorageContext.from_defaults(
            vector_store=vs), embed_model=vs.embed_model)
        seconds = time.perf_counter() - start
        retriever = index.as_retriever(similarity_top_k=10)
        run = {q: [n.node.node_id for n in retriever.retrieve(t)] for q, t in queries.items()}
        vs.close()
        return seconds, run

    return runner


STACK_RUNNERS: dict[str, Any] = {
    "langchain": langchain, "llamaindex": llamaindex, "st-upload": st_upload,
    **{b: ours(b) for b in ("torch", "torch-bf16", "onnx", "onnx-int8")},
    **{f"lc-minilm-{b}": lc_minilm(b) for b in ("torch", "auto", "onnx-int8")},
    **{f"li-minilm-{b}": li_minilm(b) for b in ("torch", "auto", "onnx-int8")},
}
