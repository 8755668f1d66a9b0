"""LlamaIndex's default pipeline on long documents, before and after windows.

LlamaIndex's ``VectorStoreIndex.from_documents`` cuts documents with its default
``SentenceSplitter`` (nodes of 1,024 tokens, 200 shared), four times what MiniLM reads. Both
layouts run that pipeline unchanged into `MiniLMVectorStore` with `MiniLMEmbedding`:

- ``truncated``: the store made with ``CollectionOptions(windows=None)``, the layout before
  windows: one vector of a node's first 254 word pieces (most of every node never reaches a
  vector);
- ``windows``: today's default, every window of every node embedded, MaxSim inside Qdrant.

SciFact-long (648 documents of ~3,650 word pieces, eight abstracts each), its judged train
claims through ``index.as_retriever`` in the store's default mode (hybrid) and in sparse mode,
nodes ranked, then documents in the order of their best node (NDCG@10 at the document level,
as the qrels judge documents); passage@10: where the returned node's passage overlaps the
cited abstract's span.

    PYTHONPATH=src:integrations/llama-index:integrations/llama-index-vector-stores \\
        python benchmarks/llamaindex_long.py [--backend onnx-int8] [--queries 809]

Writes ``llamaindex-long.json`` beside this file; figures in ``windows.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from windows import MODEL, SHARED, cpu  # noqa: E402


def run(layout: str, backend: str, count: int, top_nodes: int) -> list[dict[str, Any]]:
    from llama_index.core import Document, StorageContext, VectorStoreIndex
    from llama_index.core.vector_stores.types import VectorStoreQueryMode
    from llama_index.vector_stores.minilm import MiniLMVectorStore

    from minilm_qdrant.collection import CollectionOptions
    from minilm_qdrant.evaluation import load_beir, load_spans, metrics, passage_overlap

    data = load_beir(SHARED / "scifact-long", "train")
    spans = load_spans(data)
    queries = dict(list(data.queries.items())[:count])
    docs = [Document(text=d.text, id_=d.id) for d in data.documents()]
    options = CollectionOptions(windows=None) if layout == "truncated" else CollectionOptions()
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        store = MiniLMVectorStore("scifact-long", model_name=MODEL, backend=backend, path=tmp,
                                  options=options)
        began = time.perf_counter()
        index = VectorStoreIndex.from_documents(
            docs, storage_context=StorageContext.from_defaults(vector_store=store),
            embed_model=store.embed_model)
        seconds = time.perf_counter() - began
        points = [p for page in store.client.engine.scroll(store.client.name, 256)
                  for p in page]
        windows = sum(len(p.windows) if p.windows is not None else 1 for p in points)
        for mode in (VectorStoreQueryMode.DEFAULT, VectorStoreQueryMode.SPARSE):
            retriever = index.as_retriever(similarity_top_k=top_nodes,
                                           vector_store_query_mode=mode)
            run_: dict[str, dict[str, float]] = {}
            passages: dict[str, dict[str, tuple[int, int]]] = {}
            began = time.perf_counter()
            for qid, text in queries.items():
                ranked: dict[str, float] = {}
                for hit in retriever.retrieve(text):
                    doc = hit.node.ref_doc_id or ""
                    if doc in ranked:
                        continue
                    start, end = hit.node.start_char_idx, hit.node.end_char_idx
                    if len(ranked) < 10 and start is not None and end is not None:
                        passages.setdefault(qid, {})[doc] = (start, end)
                    ranked[doc] = -float(len(ranked))  # best first
                run_[qid] = ranked
            query_ms = (time.perf_counter() - began) / len(queries) * 1000
            m = metrics(data.qrels, run_, 10)
            rows.append({
                "layout": layout, "mode": mode.value, "ndcg@10": round(m["ndcg@10"], 4),
                "recall@10": round(m["recall@10"], 4),
                "passage@10": round(passage_overlap(spans, passages), 3),
                "nodes": len(points), "windows": windows, "index_seconds": round(seconds, 1),
                "query_ms": round(query_ms, 1), "queries": len(queries), "backend": backend,
            })
            print(json.dumps(rows[-1]), flush=True)
        store.client.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--queries", type=int, default=809)
    parser.add_argument("--top-nodes", type=int, default=50)
    parser.add_argument("--layouts", nargs="+", default=["truncated", "windows"])
    args = parser.parse_args()
    began = time.time()
    rows = [r for layout in args.layouts
            for r in run(layout, args.backend, args.queries, args.top_nodes)]
    meta = {**cpu(), "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:],
            "seconds": round(time.time() - began)}
    (HERE / "llamaindex-long.json").write_text(json.dumps({"meta": meta, "rows": rows},
                                                           indent=1) + "\n")


if __name__ == "__main__":
    main()
