"""Long documents: windows against truncation, quality by mode on every set, ingest cost, query
latency, disk and memory.

    PYTHONPATH=src python benchmarks/windows.py quality [--sets scifact-long:train scifact:train
        nfcorpus:dev irled2017:dev /any/beir/dir:split] [--cache DIR] [--backend auto]
    PYTHONPATH=src python benchmarks/windows.py ingest [--scifact 1000] [--long 100]
    PYTHONPATH=src python benchmarks/windows.py query [--docs 5000] [--window-datatype float16]
        [--payload-on-disk]
    PYTHONPATH=src python benchmarks/windows.py query-child build SOURCE STORE DOCS float16 0
    PYTHONPATH=src python benchmarks/windows.py query-child serve STORE NAME BACKEND QUERIES
        (``query``'s two steps alone: build a store, time a new process searching it)

1. ``quality``: each set indexed once per layout through `Collection` (Edge, BM25): ``windows``
   (today's default: every window embedded, pooled HNSW candidates ranked by MaxSim) and
   ``truncated`` (``CollectionOptions(windows=None)``: one vector of the first 254 word pieces,
   the layout before windows; ``--layouts`` picks). Every judged query is searched in each
   mode through `eval` (the CLI's code path): dense, sparse, hybrid DBSF and RRF (k=60), 100
   candidates a side. NDCG@10, Recall@100 and, where the set records the cited span
   (scifact-long), passage@10. Indexes are kept in ``--cache`` and reused.
2. ``ingest``: the first N SciFact abstracts and N SciFact-long documents indexed into fresh
   stores, windowed and truncated, each in a child process of its own (its peak RSS is its
   own), alternated: word pieces embedded per second (per-token cost), docs/s, disk per 1,000
   documents.
3. ``query``: one query at a time, embed + hybrid search (MaxSim rescoring inside Qdrant), p50 /
   p99, each part of the time on claims of its own (``--queries`` claims four times over), at
   the SciFact-long documents in ``--cache`` (the first ``--source`` of them indexed there when
   absent) and at ``--docs`` long documents made from their real window vectors (each
   document's windows again with Gaussian noise, sigma 0.01, renormalised). The big store is
   built in a process of its own, then searched by a new process that opens it, as a search
   service would (runs 1-14 searched in the process that had just built it: 13.0 ms p50 at
   100,000 against 10.2 opened anew, same store, same machine).

Writes ``windows-<part>.json`` beside this file (``quality`` replaces a set's earlier rows,
``query`` adds a numbered run); the figures are in README.md's
"Long documents" and ``windows.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
SHARED = Path(os.environ.get("SHARED_DATA", HERE.parent.parent / "shared" / "data"))
MODES = [("dense", "dbsf"), ("sparse", "dbsf"), ("hybrid", "rrf"), ("hybrid", "dbsf")]
LONG_SETS = {"scifact-long", "irled2017"}
MODEL = "all-MiniLM-L6-v2"


def cpu() -> dict[str, Any]:
    name = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")), platform.processor())
    flags = next((line for line in open("/proc/cpuinfo") if line.startswith("flags")), "")
    kind = "AMX" if "amx_tile" in flags else "AVX-512 BF16" if "avx512_bf16" in flags \
        else "AVX-512" if "avx512f" in flags else "AVX2 only"
    return {"cpu": name, "class": kind, "cores": os.cpu_count()}


def disk_bytes(path: Path) -> int:
    """Bytes allocated on disk (Edge preallocates sparse WAL segments)."""
    return sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file())


def quality(sets: list[str], cache: Path, backend: str, layouts: list[str],
            embedder: Any = None, note: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    from minilm_qdrant import Collection, CollectionOptions, Embedder
    from minilm_qdrant.evaluation import evaluate, load_beir

    rows = []
    embedder = embedder or Embedder(MODEL, backend=backend)
    for item in sets:  # a set of ../shared/data by name, or any BEIR directory by path
        root, split = item.rsplit(":", 1)
        name = Path(root).name
        data = load_beir(SHARED / root, split)
        for layout in layouts:
            options = CollectionOptions() if layout == "windows" \
                else CollectionOptions(windows=None)
            where = cache / (name if layout == "windows" else f"{name}-truncated")
            with Collection(f"beir-{name}", embedder, path=str(where), options=options) as col:
                for mode, fusion in MODES:
                    result = evaluate(col, data, mode=mode, fusion=fusion)  # type: ignore[arg-type]
                    row = {"set": name, "split": split, "layout": layout, **result.as_dict(),
                           "disk_mb": round(disk_bytes(where) / 2**20, 1), **(note or {})}
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def ingest_child(kind: str, layout: str, n: int, backend: str) -> dict[str, Any]:
    """One ingest in this (child) process: a fresh store, the first ``n`` documents."""
    from minilm_qdrant import Collection, CollectionOptions, Embedder
    from minilm_qdrant.evaluation import load_beir

    data = load_beir(SHARED / kind, "train")
    docs = [d for _, d in zip(range(n), data.documents(), strict=False)]
    options = CollectionOptions() if layout == "windows" else CollectionOptions(windows=None)
    embedder = Embedder(MODEL, backend=backend)
    embedder.load()
    embedder.embed_documents(["warm up the backend"] * 8)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Collection("c", embedder, path=tmp, options=options) as col:
            began = time.perf_counter()
            report = col.upsert(docs)
            seconds = time.perf_counter() - began
        disk = disk_bytes(Path(tmp))
    rss = next(int(line.split()[1]) / 1024 for line in Path("/proc/self/status").read_text()
               .splitlines() if line.startswith("VmHWM:"))
    chars = sum(len(d.text) for d in docs)
    return {"set": kind, "layout": layout, "docs": len(docs), "seconds": round(seconds, 2),
            "tokens": report.tokens, "windows": report.windows, "windowed": report.windowed,
            "truncated": report.truncated, "tokens_per_s": round(report.tokens / seconds),
            "docs_per_s": round(len(docs) / seconds, 1),
            "us_per_token": round(seconds / report.tokens * 1e6, 2),
            "chars_per_s": round(chars / seconds), "disk_mb_per_1k": round(
                disk / 2**20 * 1000 / len(docs), 1), "peak_rss_mib": round(rss)}


def ingest(sizes: dict[str, int], backend: str, rounds: int) -> list[dict[str, Any]]:
    rows = []
    for _ in range(rounds):
        for kind, n in sizes.items():
            for layout in ("truncated", "windows"):
                out = subprocess.run(
                    [sys.executable, __file__, "ingest-child", kind, layout, str(n), backend],
                    capture_output=True, text=True, check=True)
                row = json.loads(out.stdout.strip().splitlines()[-1])
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def query(cache: Path, docs: int, backend: str, count: int, source: int,
          window_datatype: str = "float16", payload_on_disk: bool = False) -> list[dict[str, Any]]:
    from minilm_qdrant import Collection, Embedder
    from minilm_qdrant.evaluation import load_beir

    data = load_beir(SHARED / "scifact-long", "train")
    if len(data.queries) < 4 * count:  # each part on queries of its own
        sys.exit(f"--queries {count} needs {4 * count} claims; SciFact-long has "
                 f"{len(data.queries)}")
    with Collection("beir-scifact-long", Embedder(MODEL, backend=backend),
                    path=str(cache / "scifact-long")) as col:
        if col.count() == 0:
            col.upsert([d for _, d in zip(range(source), data.documents(), strict=False)])
        have = col.count()
    rows = [_child("serve", str(cache / "scifact-long"), "beir-scifact-long", backend, count)]
    if docs > have:
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            built = _child("build", str(cache / "scifact-long"), tmp, docs, window_datatype,
                           int(payload_on_disk))
            rows.append({**_child("serve", tmp, "big", backend, count), **built,
                         "disk_mb": round(disk_bytes(Path(tmp)) / 2**20)})
    for row in rows:
        print(json.dumps(row), flush=True)
    return rows


def _child(*args: Any) -> dict[str, Any]:
    """One step of ``query`` in a process of its own: ``build`` the big store, or ``serve``
    (open a built store and time it, as a search service would; the builder's memory is gone)."""
    out = subprocess.run([sys.executable, __file__, "query-child", *map(str, args)],
                         check=True, capture_output=True, text=True).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def serve(store: str, name: str, backend: str, count: int) -> dict[str, Any]:
    from minilm_qdrant import Collection, Embedder
    from minilm_qdrant.evaluation import load_beir

    queries = list(load_beir(SHARED / "scifact-long", "train").queries.values())[:4 * count]
    with Collection(name, Embedder(MODEL, backend=backend), path=store) as col:
        row = _latency(col, queries, col.count())
    return {**row, "peak_rss_mb": _peak_mb()}


def build(source: str, store: str, docs: int, window_datatype: str,
          payload_on_disk: bool) -> dict[str, Any]:
    """``docs`` long documents from the SciFact-long points at ``source``: each document's
    windows again with noise (and their codes made again), the pooled vector, its BM25."""
    from minilm_qdrant import Collection, CollectionOptions, Embedder
    from minilm_qdrant.documents import point_id
    from minilm_qdrant.windows import CODES_KEY, window_codes

    embedder = Embedder(MODEL)
    with Collection("beir-scifact-long", embedder, path=source) as col:
        points = [p for page in col.engine.scroll(col.name, 256) for p in page]
    rng = np.random.default_rng(0)
    options = CollectionOptions(  # type: ignore[arg-type]
        window_datatype=window_datatype, on_disk_payload=True if payload_on_disk else None)
    with Collection("big", embedder, path=store, options=options) as big:
        began = time.perf_counter()
        written = 0
        while written < docs:
            batch = points[:min(len(points), docs - written)]
            windows = [_noisy(p.windows, rng) for p in batch]
            dense = np.stack([embedder.pooled(w) for w in windows])
            ids = [point_id(f"{written + i}") for i in range(len(batch))]
            payloads = [{**p.payload, "doc_id": f"{written + i}", **(
                {CODES_KEY: window_codes(w)} if CODES_KEY in p.payload else {})}
                for i, (p, w) in enumerate(zip(batch, windows, strict=True))]
            big.engine.upsert(big.name, ids, dense, payloads, [p.sparse for p in batch], windows)
            written += len(batch)
        big.engine.optimize(big.name)
        seconds = time.perf_counter() - began
    return {"build_seconds": round(seconds, 1), "window_datatype": window_datatype,
            "payload": "disk" if payload_on_disk else "engine default",
            "window_vectors": int(sum(len(p.windows) for p in points) * docs / len(points)),
            "build_peak_rss_mb": _peak_mb()}


def _peak_mb() -> int:
    """This process's peak RSS (VmHWM; ru_maxrss would carry a parent's across exec)."""
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]
    return round(int(status) / 1024)


def _noisy(rows: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noisy = rows + rng.normal(0, 0.01, rows.shape).astype(np.float32)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def _latency(col: Any, queries: list[str], docs: int) -> dict[str, Any]:
    """p50/p99 of ``col.search`` (embed + hybrid + every hit's passage), and where the time
    goes: the query's embedding, and the search with its vectors given (with every hit's
    passage, with the top 3's, with none). Each part is timed on queries of its own, taken in
    turn: a query searched again finds Edge's caches warm (at 100,000 documents, payload on
    disk: 9.3 ms against 12.9 the first time), so parts timed on a repeat would not add up."""
    col.search("warm up the model and the store", k=10)
    parts: dict[str, list[float]] = {"all": [], "embed": [], "search": [], "search_top3": [],
                                     "search_no_passage": []}
    groups = [queries[i::4] for i in range(4)]
    for whole, split, top3, none in zip(*groups, strict=False):
        began = time.perf_counter()
        col.search(whole, k=10)  # embed (windowed when long) + hybrid with MaxSim, in Qdrant
        parts["all"].append(time.perf_counter() - began)
        for text, part, passages in ((split, "search", None), (top3, "search_top3", 3),
                                     (none, "search_no_passage", 0)):
            began = time.perf_counter()
            windows = col.windows.embed_query(col.embedder, text)
            if part == "search":
                parts["embed"].append(time.perf_counter() - began)
            dense, sparse = col.embedder.pooled(windows), col.sparse.encode_query(text)
            began = time.perf_counter()
            col.search_vector(dense, 10, sparse=sparse, windows=windows, passages=passages)
            parts[part].append(time.perf_counter() - began)
    row: dict[str, Any] = {"docs": docs, "queries": len(parts["all"])}
    for part, seconds in parts.items():
        p50, p99 = np.percentile(seconds, [50, 99]) * 1000
        prefix = "" if part == "all" else f"{part}_"
        row[f"{prefix}p50_ms"], row[f"{prefix}p99_ms"] = round(float(p50), 2), round(float(p99), 2)
    return {**row, "backend": col.embedder.backend_name,
            "query_backend": col.embedder.resolved("query")}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "ingest-child":
        kind, layout, n, backend = sys.argv[2:6]
        print(json.dumps(ingest_child(kind, layout, int(n), backend)))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "query-child":
        step, a = sys.argv[2], sys.argv[3:]
        print(json.dumps(serve(a[0], a[1], a[2], int(a[3])) if step == "serve"
                         else build(a[0], a[1], int(a[2]), a[3], bool(int(a[4])))))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["quality", "ingest", "query"])
    parser.add_argument("--sets", nargs="+", default=[
        "scifact-long:train", "scifact:train", "nfcorpus:dev"])
    parser.add_argument("--layouts", nargs="+", default=["windows", "truncated"],
                        choices=["windows", "truncated"])
    parser.add_argument("--cache", type=Path, default=HERE / ".cache" / "windows")
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--scifact", type=int, default=1000)
    parser.add_argument("--long", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--docs", type=int, default=5000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--source", type=int, default=648)
    parser.add_argument("--window-datatype", default="float16", choices=["float16", "float32"])
    parser.add_argument("--payload-on-disk", action="store_true",
                        help="the big store's payload on disk (Edge's own default; ours: RAM)")
    args = parser.parse_args()
    began = time.time()
    if args.part == "quality":
        rows = quality(args.sets, args.cache, args.backend, args.layouts)
    elif args.part == "ingest":
        rows = ingest({"scifact": args.scifact, "scifact-long": args.long}, args.backend,
                      args.rounds)
    else:
        rows = query(args.cache, args.docs, args.backend, args.queries, args.source,
                     args.window_datatype, args.payload_on_disk)
    meta = {**cpu(), "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:],
            "seconds": round(time.time() - began)}
    target = HERE / f"windows-{args.part}.json"
    if args.part != "ingest" and target.exists():  # a run adds to the earlier ones
        earlier = json.loads(target.read_text())
        runs = earlier["meta"].get("runs", [earlier["meta"]])
        if args.part == "quality":  # a set's fresh rows replace its earlier ones
            key = ("set", "split", "layout", "mode")
            fresh = {tuple(r[k] for k in key) for r in rows}
            rows = [r for r in earlier["rows"] if tuple(r[k] for k in key) not in fresh] + rows
        else:  # query runs are kept side by side, numbered
            rows = earlier["rows"] + [{"run": len(runs) + 1, **r} for r in rows]
        meta = {"runs": [*runs, meta]}
    target.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
