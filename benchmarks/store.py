"""Edge vs qdrant-client local mode, side by side; each engine measured in its own subprocess.

    python benchmarks/store.py --runs edge:random:10000 local:random:10000 \
        edge:real:100000 local:real:100000 edge:real+noise:1000000:disk [--out FILE]

A run is ``ENGINE:DATA:N[:disk]``. Per run: upsert points/s (batches of 1,000), index build
(optimize) seconds, reopen seconds, query p50/p99 ms (exact and HNSW at the default ``hnsw_ef``,
top 10), recall@10 of HNSW vs exact, peak RSS, bytes on disk. ``:disk`` keeps vectors on disk
(memory-mapped). DATA: ``random`` (unit vectors, seed 0: the worst case for HNSW), ``real``
(MiniLM vectors of SciFact passages and the SciFact claims as queries, made by
``real_vectors.py``), ``real+noise`` (the real vectors repeated up to N with Gaussian noise,
renormalised; real queries): synthetic vectors beyond the corpus that keep its structure.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from minilm_qdrant.collection import CollectionOptions
from minilm_qdrant.engines import Engine, SearchRequest

BATCH = 1000
CACHE = Path(__file__).parent / ".cache"


def _vectors(n: int, seed: int) -> np.ndarray:
    x = np.random.default_rng(seed).standard_normal((n, 384)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _open(kind: str, path: str) -> Engine:
    if kind == "edge":
        from minilm_qdrant.engines.edge import EdgeEngine

        return EdgeEngine(path)
    from qdrant_client import QdrantClient

    from minilm_qdrant.engines.client import ClientEngine

    return ClientEngine(QdrantClient(path=path))


def _disk(path: str) -> int:
    return sum(p.stat().st_size for p in Path(path).rglob("*") if p.is_file())


def _batches(source: str, n: int) -> Iterator[np.ndarray]:
    """The N vectors in batches of 1,000, made as they are sent (never all in memory)."""
    docs = None if source == "random" else np.load(CACHE / "docs.npy", mmap_mode="r")
    for a in range(0, n, BATCH):
        size = min(BATCH, n - a)
        if docs is None:
            yield _vectors(size, a + 1)
            continue
        if source == "real" and a >= len(docs):
            return
        start = a % len(docs)
        part = np.array(docs[start:start + size])
        if a >= len(docs):  # beyond the corpus: noisy copies of it
            rng = np.random.default_rng(a)
            part += rng.standard_normal(part.shape, dtype=np.float32) * 0.01
            part /= np.linalg.norm(part, axis=1, keepdims=True)
        yield part


def _queries(source: str, count: int) -> np.ndarray:
    if source == "random":
        return _vectors(count, 0)
    return np.load(CACHE / "queries.npy")[:count]


def worker(kind: str, source: str, n: int, queries: int, on_disk: bool) -> dict[str, object]:
    """One engine, one size, in this process (so peak RSS is its own)."""
    qs = _queries(source, queries)
    options = CollectionOptions(on_disk=True if on_disk else None, sparse=None)
    out: dict[str, object] = {"engine": kind, "data": source + (" (on disk)" if on_disk else ""),
                              "n": n}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        path = str(Path(tmp) / "store")
        engine = _open(kind, path)
        engine.create("bench", 384, "dot", {}, options, sparse=False, windows=True)
        start, n = time.perf_counter(), 0
        for vectors in _batches(source, out["n"]):  # type: ignore[arg-type]
            ids = [str(uuid.UUID(int=i + 1)) for i in range(n, n + len(vectors))]
            engine.upsert("bench", ids, vectors, [{"i": i} for i in range(n, n + len(vectors))])
            n += len(vectors)
        out["n"] = n
        out["upsert_pts_s"] = round(n / (time.perf_counter() - start))
        start = time.perf_counter()
        engine.optimize("bench")
        out["index_s"] = round(time.perf_counter() - start, 2)
        engine.close()
        start = time.perf_counter()
        engine = _open(kind, path)
        assert engine.count("bench") == n
        out["reopen_s"] = round(time.perf_counter() - start, 3)
        results: dict[bool, list[list[str]]] = {}
        for exact in (True, False):
            times, found = [], []
            for q in qs:
                t = time.perf_counter()
                hits = engine.search("bench", SearchRequest(10, dense=q, exact=exact))
                times.append((time.perf_counter() - t) * 1000)
                found.append([h.id for h in hits])
            name = "exact" if exact else "hnsw"
            out[f"{name}_p50_ms"] = round(float(np.percentile(times, 50)), 2)
            out[f"{name}_p99_ms"] = round(float(np.percentile(times, 99)), 2)
            results[exact] = found
        out["recall@10"] = round(float(np.mean([
            len(set(a) & set(b)) / 10 for a, b in zip(results[True], results[False], strict=True)
        ])), 4)
        engine.close()
        out["disk_mb"] = round(_disk(path) / 1e6, 1)
    out["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    return out


COLUMNS = ["engine", "data", "n", "upsert_pts_s", "index_s", "reopen_s", "exact_p50_ms",
           "exact_p99_ms", "hnsw_p50_ms", "hnsw_p99_ms", "recall@10", "peak_rss_mb", "disk_mb"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--worker", help="one run, in this process")
    parser.add_argument("--runs", nargs="*", default=[
        "edge:random:10000", "local:random:10000", "edge:real:100000", "local:real:100000",
        "edge:real+noise:1000000:disk",
    ])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--out", help="append the Markdown table to this file")
    args = parser.parse_args()
    if args.worker:
        kind, source, n, *disk = args.worker.split(":")
        print(json.dumps(worker(kind, source, int(n), args.queries, disk == ["disk"])))
        return
    rows = []
    for run in args.runs:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", run, "--queries", str(args.queries)],
            capture_output=True, text=True, check=False,
        )
        if proc.returncode:
            print(f"{run}: failed: {proc.stderr[-500:]}", file=sys.stderr)
            continue
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    table = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    table += ["| " + " | ".join(str(r.get(c, "")) for c in COLUMNS) + " |" for r in rows]
    print("\n".join(table))
    if args.out:
        with open(args.out, "a", encoding="utf-8") as f:
            f.write("\n".join(table) + "\n")


if __name__ == "__main__":
    main()
