"""Hybrid retrieval on SciFact: quality by search mode, and what BM25 sparse vectors cost at ingest.

    PYTHONPATH=src python benchmarks/hybrid.py [--split train] [--backend torch]
        [--ingest-backend onnx-int8] [--skip-ingest]

1. Quality: the corpus is indexed once through `Collection` (Edge, with sparse vectors) and
   every judged query is searched in each mode through `eval` (the CLI's code path):
   dense, sparse (BM25), hybrid DBSF and hybrid RRF (k=60), 100 candidates from each side.
   NDCG@10, Recall@100, MRR@10 and the engine's search p50/p99 (query encoding excluded).
2. Ingest cost: the same corpus indexed into a fresh store with and without sparse vectors
   (``--ingest-backend``, default ``auto``: the fastest lossless backend, so the sparse share
   is the largest it gets),
   docs/s and bytes on disk; and BM25 encoding alone over the corpus.

Writes ``hybrid.md`` / ``hybrid.json`` beside this file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
MODES = [("dense", "dbsf"), ("sparse", "dbsf"), ("hybrid", "rrf"), ("hybrid", "dbsf")]


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def quality(split: str, backend: str) -> list[dict[str, Any]]:
    from minilm_qdrant import Collection, Embedder
    from minilm_qdrant.evaluation import evaluate, load_beir

    data = load_beir(DATA, split)
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp, Collection(
        "scifact", Embedder("all-MiniLM-L6-v2", backend=backend), path=tmp
    ) as col:
        for mode, fusion in MODES:
            result = evaluate(col, data, mode=mode, fusion=fusion)  # type: ignore[arg-type]
            row = {**result.as_dict(), "index_seconds": round(result.index_seconds, 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def ingest(backend: str, limit: int | None, runs: int) -> list[dict[str, Any]]:
    from minilm_qdrant import Collection, CollectionOptions, Embedder
    from minilm_qdrant.evaluation import load_beir
    from minilm_qdrant.sparse import Bm25Encoder

    data = load_beir(DATA, "train")
    docs = list(data.documents())[:limit]
    texts = [d.text for d in docs]
    start = time.perf_counter()
    Bm25Encoder().encode_documents(texts)
    bm25_s = time.perf_counter() - start
    embedder = Embedder("all-MiniLM-L6-v2", backend=backend)
    embedder.load()
    embedder.embed_documents(texts[:64], warn=False)  # warm-up
    rows = []
    for sparse in (True, False) * runs:
        options = CollectionOptions() if sparse else CollectionOptions(sparse=None)
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            with Collection("scifact", embedder, path=tmp, options=options) as col:
                report = col.upsert(docs)
            row = {"sparse": sparse, "docs": report.written, "seconds": round(report.seconds, 1),
                   "docs_per_s": round(report.written / report.seconds, 2),
                   "disk_mb": round(disk_bytes(Path(tmp)) / 1e6, 1)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    rows.append({"bm25_encode_s": round(bm25_s, 2), "docs": len(texts)})
    rows += store_cost(embedder, docs)
    return rows


def store_cost(embedder: Any, docs: list[Any]) -> list[dict[str, Any]]:
    """What the sparse vectors add on the store side alone: the same precomputed dense vectors
    written (batches of 256, as an ingest does) and indexed, with and without BM25."""
    from minilm_qdrant import Collection, CollectionOptions

    vectors = embedder.embed_documents([d.text for d in docs], warn=False)
    rows = []
    for sparse in (True, False) * 3:
        options = CollectionOptions() if sparse else CollectionOptions(sparse=None)
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp, Collection(
                "scifact", embedder, path=tmp, options=options) as col:
            start = time.perf_counter()
            for a in range(0, len(docs), 256):
                part = docs[a:a + 256]
                bm25 = col.sparse.encode_documents([d.text for d in part]) if col.sparse else None
                col.engine.upsert("scifact", [d.point_id for d in part], vectors[a:a + 256],
                                  [d.payload() for d in part], bm25)
            written = time.perf_counter() - start
            col.optimize()
            total = time.perf_counter() - start
        row = {"store_only": True, "sparse": sparse, "upsert_s": round(written, 2),
               "upsert_and_index_s": round(total, 2)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def table(meta: dict[str, Any], q: list[dict[str, Any]], ing: list[dict[str, Any]]) -> str:
    lines = [f"SciFact ({meta['split']} claims), all-MiniLM-L6-v2 `{meta['backend']}`, one Edge "
             f"shard, 100 candidates per side; {meta['cpu']}, {meta['cores']} cores", "",
             "| mode | NDCG@10 | Recall@100 | MRR@10 | search p50 / p99 ms |",
             "|---|---:|---:|---:|---|"]
    for r in q:
        lines.append(f"| {r['mode']} | {r['ndcg@10']:.4f} | {r['recall@100']:.4f} | "
                     f"{r['mrr@10']:.4f} | {r['query_ms_p50']} / {r['query_ms_p99']} |")
    if ing:
        lines += ["", f"Ingest of {ing[0]['docs']:,} corpus documents, `{meta['ingest_backend']}` "
                  "(runs alternate):", "",
                  "| sparse vectors | docs/s | seconds | disk MB |", "|---|---:|---:|---:|"]
        for r in ing:
            if "sparse" in r and "store_only" not in r:
                lines.append(f"| {'yes' if r['sparse'] else 'no'} | {r['docs_per_s']} | "
                             f"{r['seconds']} | {r['disk_mb']} |")
        bm = next(r for r in ing if "bm25_encode_s" in r)
        lines.append(f"\nBM25 encoding alone: {bm['docs']:,} documents in {bm['bm25_encode_s']} s.")
        store = [r for r in ing if "store_only" in r]
        if store:
            lines += ["", "The store side alone (same precomputed dense vectors, batches of 256, "
                      "then the HNSW build; runs alternate):", "",
                      "| sparse vectors | upsert s | upsert + index s |", "|---|---:|---:|"]
            lines += [f"| {'yes' if r['sparse'] else 'no'} | {r['upsert_s']} | "
                      f"{r['upsert_and_index_s']} |" for r in store]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--split", default="train")
    parser.add_argument("--backend", default="torch")
    parser.add_argument("--ingest-backend", default="auto")
    parser.add_argument("--skip-ingest", action="store_true")
    parser.add_argument("--ingest-docs", type=int, help="First N documents [default: all].")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--runs", type=int, default=2, help="Ingest runs of each kind.")
    args = parser.parse_args()
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                if line.startswith("model name")), platform.processor())
    meta = {"split": args.split, "backend": args.backend, "ingest_backend": args.ingest_backend,
            "cpu": cpu, "cores": os.cpu_count()}
    out = HERE / "hybrid.json"
    before = json.loads(out.read_text()) if out.exists() else {}  # a skipped part is kept
    q = before.get("quality", []) if args.skip_quality else quality(args.split, args.backend)
    ing = before.get("ingest", []) if args.skip_ingest \
        else ingest(args.ingest_backend, args.ingest_docs, args.runs)
    if args.skip_quality:
        meta["backend"] = before.get("meta", {}).get("backend", args.backend)
    out.write_text(json.dumps({"meta": meta, "quality": q, "ingest": ing},
                                                 indent=2))
    (HERE / "hybrid.md").write_text(table(meta, q, ing))
    print(table(meta, q, ing))


if __name__ == "__main__":
    main()
