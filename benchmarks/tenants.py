"""Tenants at 100k points: a tenant's hybrid search against an unscoped one, ingest, memory.

    python benchmarks/real_vectors.py          # once: 100k real passage vectors (cached)
    python benchmarks/tenants.py [--n 100000] [--queries 300]

One collection of ``n`` real SciFact passages (all-MiniLM-L6-v2 vectors from
``benchmarks/real_vectors.py``; BM25 from their text) on the embedded store, spread over 10,
1,000 and 10,000 tenants (passage i belongs to tenant i mod T: tenants interleaved, as they
arrive in a shared service). Per layout, in a process of its own (peak RSS is that layout's):
ingest points/s (each tenant's documents through its own handle, vectors given), the store on
disk, p50/p99 of a tenant's hybrid search (dense + BM25 fused in the engine, k=10), the same
search unscoped over the whole collection, and the yardstick of the target: the same queries
on a collection holding only that tenant's points (default options). Dense recall@10 of the
tenant's HNSW search against its exact search compares the global graph (m=16) with Qdrant's
per-tenant graphs (m=0, payload_m=16: what a tenanted collection gets by default). Writes
benchmarks/tenants.md and .json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = HERE / ".cache"
GLOBAL, PER_TENANT = "global graph (m=16)", "a graph per tenant (m=0, payload_m=16; default)"
LAYOUTS = [("untenanted", 0, None), (f"10 tenants, {GLOBAL}", 10, None),
           (f"1,000 tenants, {GLOBAL}", 1000, None), (f"10,000 tenants, {GLOBAL}", 10_000, None),
           (f"10 tenants, {PER_TENANT}", 10, 16), (f"1,000 tenants, {PER_TENANT}", 1000, 16),
           (f"10,000 tenants, {PER_TENANT}", 10_000, 16)]
BASELINE_TENANTS = 12


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)) * 1000, 2)


def _disk(path: Path) -> int:
    """Bytes on disk (allocated blocks: Edge preallocates sparse files)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def one(label: str, tenants: int, payload_m: int | None, n: int, queries: int) -> dict[str, Any]:
    """Build one layout in this process and measure it."""
    from minilm_qdrant import Collection, CollectionOptions, Document, Embedder

    sys.path.insert(0, str(HERE))
    from real_vectors import DATA, passages

    texts = passages(DATA / "corpus.jsonl")[:n]
    vectors = np.load(CACHE / "docs.npy")[:n]
    claims = [json.loads(q)["text"] for q in (DATA / "queries.jsonl").open()]
    qvecs = np.load(CACHE / "queries.npy")
    embedder = Embedder("all-MiniLM-L6-v2", backend="onnx-int8")
    options = CollectionOptions(hnsw_m=0, hnsw_payload_m=payload_m) if payload_m \
        else CollectionOptions(hnsw_m=16)
    tmp = Path(tempfile.mkdtemp(prefix="tenants-"))
    col = Collection("shared", embedder, path=str(tmp / "store"), options=options,
                     tenant="t0" if tenants else None)
    by_tenant: dict[int, list[int]] = {}
    for i in range(n):
        by_tenant.setdefault(i % tenants if tenants else 0, []).append(i)
    start = time.perf_counter()
    for t, rows in by_tenant.items():
        handle = col.tenant(f"t{t}") if tenants else col
        handle.upsert([Document(texts[i], {"n": i}, id=i) for i in rows],
                      vectors={i: vectors[i] for i in rows}, optimize=False)
    col.optimize()
    ingest = time.perf_counter() - start
    disk = _disk(tmp / "store")
    assert col.sparse is not None
    rng = np.random.default_rng(7)
    picked = rng.choice(len(claims), size=queries, replace=len(claims) < queries)
    per = n // tenants if tenants else n
    chosen = sorted(by_tenant)[:max(1, min(BASELINE_TENANTS, 20_000 // per))]
    whose = [int(x) for x in rng.choice(chosen, size=queries)]
    sparse = {int(q): col.sparse.encode_query(claims[q]) for q in set(picked.tolist())}

    def timed(handle_of: Any, mode: str = "hybrid", exact: bool = False) -> tuple[list[float],
                                                                                  list[list[Any]]]:
        seconds, found = [], []
        for q, t in zip(picked, whose, strict=True):
            handle = handle_of(t)
            began = time.perf_counter()
            hits = handle.search_vector(qvecs[q], 10, sparse=sparse[int(q)] if mode != "dense"
                                        else None, mode=mode, exact=exact)
            seconds.append(time.perf_counter() - began)
            found.append([h.id for h in hits])
        return seconds, found

    views = {t: col.tenant(f"t{t}") if tenants else col for t in set(whose)}
    timed(lambda t: views[t])  # warm
    scoped, _ = timed(lambda t: views[t])
    admin = Collection("shared", engine=col.engine, all_tenants=True)
    unscoped, _ = timed(lambda t: admin)
    _, approx = timed(lambda t: views[t], "dense")
    _, exact = timed(lambda t: views[t], "dense", exact=True)
    recall = float(np.mean([len(set(a) & set(e)) / max(1, len(e))
                            for a, e in zip(approx, exact, strict=True)]))
    alone: dict[int, Collection] = {}  # the yardstick: only that tenant's points
    for t in set(whose) if tenants else ():
        rows = by_tenant[t]
        alone[t] = Collection(f"alone-{t}", embedder, engine=col.engine)
        alone[t].upsert([Document(texts[i], {"n": i}, id=i) for i in rows],
                        vectors={i: vectors[i] for i in rows})
    yardstick = unscoped  # untenanted: the collection is the tenant's alone
    if tenants:
        timed(lambda t: alone[t])
        yardstick, _ = timed(lambda t: alone[t])
    col.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return {
        "layout": label, "tenants": tenants, "points": n, "points_per_tenant": per,
        "ingest_points_per_s": round(n / ingest, 1), "ingest_s": round(ingest, 1),
        "tenant_p50_ms": _pct(scoped, 50), "tenant_p99_ms": _pct(scoped, 99),
        "unscoped_p50_ms": _pct(unscoped, 50), "unscoped_p99_ms": _pct(unscoped, 99),
        "alone_p50_ms": _pct(yardstick, 50), "alone_p99_ms": _pct(yardstick, 99),
        "tenant_vs_alone_p50": round(_pct(scoped, 50) / max(_pct(yardstick, 50), 1e-9), 2),
        "dense_recall_at_10": round(recall, 4),
        "disk_mb": round(disk / 2**20, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--layouts", type=int, nargs="+", default=list(range(len(LAYOUTS))),
                        help="which layouts to (re)run; the others' rows are kept from the json")
    parser.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one is not None:
        label, tenants, payload_m = LAYOUTS[args.one]
        print(json.dumps(one(label, tenants, payload_m, args.n, args.queries)))
        return
    if not (CACHE / "docs.npy").exists():
        sys.exit("run benchmarks/real_vectors.py first (real vectors, cached)")
    earlier = json.loads((HERE / "tenants.json").read_text()) \
        if (HERE / "tenants.json").exists() else []
    kept = {r["layout"]: r for r in earlier}
    rows = []
    for i, (label, *_rest) in enumerate(LAYOUTS):
        if i not in args.layouts:
            if label in kept:
                rows.append(kept[label])
            continue
        out = subprocess.run([sys.executable, __file__, "--one", str(i), "--n", str(args.n),
                              "--queries", str(args.queries)], capture_output=True, text=True,
                             env={**os.environ, "HF_HUB_OFFLINE": "1"})
        if out.returncode:
            sys.exit(f"{label}: {out.stderr[-2000:]}")
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
        (HERE / "tenants.json").write_text(json.dumps(  # each layout kept as it ends
            rows + [r for r in earlier if r["layout"] not in {x["layout"] for x in rows}],
            indent=1) + "\n", encoding="utf-8")
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    head = (f"Tenants: {args.n:,} real SciFact passage vectors (all-MiniLM-L6-v2), embedded "
            f"store, hybrid k=10, {args.queries} queries per layout; CPU: {cpu} "
            f"({os.cpu_count()} cores), one run.\n\n")
    lines = ["| layout | points/tenant | ingest points/s | tenant p50 / p99 ms | unscoped "
             "(whole collection) p50 / p99 ms | tenant alone p50 / p99 ms | tenant / alone p50 "
             "| dense recall@10 (HNSW vs exact, in the tenant) | disk MB | peak RSS MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['layout']} | {r['points_per_tenant']:,} | {r['ingest_points_per_s']:,} | "
            f"{r['tenant_p50_ms']} / {r['tenant_p99_ms']} | {r['unscoped_p50_ms']} / "
            f"{r['unscoped_p99_ms']} | {r['alone_p50_ms']} / {r['alone_p99_ms']} | "
            f"{r['tenant_vs_alone_p50']}x | {r['dense_recall_at_10']} | "
            f"{r['disk_mb']} | {r['peak_rss_mb']} |")
    (HERE / "tenants.md").write_text(head + "\n".join(lines) + "\n", encoding="utf-8")
    (HERE / "tenants.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    print(head + "\n".join(lines))


if __name__ == "__main__":
    main()
