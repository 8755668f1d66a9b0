"""Is a difference between the two layouts more than the noise of the query set?

    PYTHONPATH=src python benchmarks/paired.py CACHE nfcorpus:dev [--mode hybrid] [--fusion dbsf]

Opens the two indexes `windows.py quality --cache CACHE` built for a set (windows and
truncated), searches every judged query in both, and bootstraps the per-query NDCG@10
difference (10,000 resamples of the queries, seed 0): its mean, 95% interval, and how many
queries each layout wins.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import ir_measures
import numpy as np
from ir_measures import nDCG
from windows import MODEL, SHARED

from minilm_qdrant import Collection, CollectionOptions, Embedder
from minilm_qdrant.evaluation import load_beir, run_queries


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("cache", type=Path)
    parser.add_argument("set")
    parser.add_argument("--mode", default="hybrid")
    parser.add_argument("--fusion", default="dbsf")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    root, split = args.set.rsplit(":", 1)
    name = Path(root).name
    data = load_beir(SHARED / root, split)
    embedder = Embedder(MODEL, backend=args.backend)
    per: dict[str, dict[str, float]] = {}
    for layout, options, where in (
        ("windows", CollectionOptions(), args.cache / name),
        ("truncated", CollectionOptions(windows=None), args.cache / f"{name}-truncated"),
    ):
        with Collection(f"beir-{name}", embedder, path=str(where), options=options) as col:
            run, _ = run_queries(col, data.queries, 100, mode=args.mode, fusion=args.fusion)
        per[layout] = {m.query_id: m.value
                       for m in ir_measures.iter_calc([nDCG @ 10], data.qrels, run)}
    qids = sorted(data.qrels)
    a = np.array([per["windows"].get(q, 0.0) for q in qids])
    b = np.array([per["truncated"].get(q, 0.0) for q in qids])
    d = a - b
    rng = np.random.default_rng(0)
    means = np.array([d[rng.integers(0, len(d), len(d))].mean() for _ in range(10_000)])
    low, high = np.percentile(means, [2.5, 97.5])
    print(json.dumps({
        "set": name, "split": split, "mode": args.mode, "fusion": args.fusion,
        "queries": len(d), "windows": round(float(a.mean()), 4),
        "truncated": round(float(b.mean()), 4), "difference": round(float(d.mean()), 4),
        "interval95": [round(float(low), 4), round(float(high), 4)],
        "windows_better": int((d > 0).sum()), "worse": int((d < 0).sum()),
        "same": int((d == 0).sum()),
    }))


if __name__ == "__main__":
    main()
