"""Memory at scale: unquantized against int8 against binary, on real MiniLM vectors.

    PYTHONPATH=src python benchmarks/real_vectors.py      # once: benchmarks/.cache/*.npy
    PYTHONPATH=src python benchmarks/quantization.py run --sizes 100000 300000 \
        [--kinds none int8 binary int8+windows] [--queries 300] [--out benchmarks/quantization]
    PYTHONPATH=src python benchmarks/quantization.py child build N KIND STORE
    PYTHONPATH=src python benchmarks/quantization.py child serve N KIND STORE QUERIES

Documents as a real collection holds them: the SciFact passages of ``real_vectors.py`` (titles,
sentences, two- and three-sentence chunks) with their all-MiniLM-L6-v2 vectors; beyond the
~100,000 passages, copies of them (the text with " (copy N)", the vector with Gaussian noise,
sigma 0.01 a component, renormalised: near-duplicates that make top-10 recall harder than real
data). Each size and kind is written through `Collection.upsert` (the real write path with the
vectors given: text payloads, windows, BM25 sparse vectors, hashes), default options but
``quantization`` (``int8+windows``: int8, and the windows multivector quantized too), in a
child process of its own (``build``: write + optimize seconds); then a new child opens the
store as a search service would and searches it (``serve``): the SciFact claims' vectors
(query prompt), 20 warm-up queries, then ``QUERIES`` dense and hybrid searches (top 10, the
default 100 candidates a side), p50 / p99 of `Collection.search_vector`, recall@10 of dense
against exact fp32 search (numpy over every vector), agreement@10 of hybrid with the
unquantized collection's hybrid, and dense recall / p50 across oversampling factors.
The serving child's peak RSS (VmHWM; anonymous and file-backed parts at the end) is read
before the model is loaded, then again with the query model (ONNX) loaded and used; disk is
the blocks allocated. Each row is appended to ``OUT.json`` as soon as it is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("QUANT_CACHE", HERE / ".cache"))
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
MODEL = "all-MiniLM-L6-v2"
CHUNK = 10_000
OVERSAMPLING = (1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
QUERY_BACKEND = "onnx"
"""The serving child's query model (what ``auto`` picks for one query; torch would add its
~0.8 GB import to the process)."""


def texts() -> list[str]:
    sys.path.insert(0, str(HERE))
    from real_vectors import passages

    return passages(DATA / "corpus.jsonl")


def corpus(n: int) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """``n`` documents in chunks: (first index, texts, vectors); the real passages first, then
    noisy copies of them."""
    docs = np.load(CACHE / "docs.npy", mmap_mode="r")
    words = texts()[: len(docs)]
    for a in range(0, n, CHUNK):
        rows = []
        names = []
        for i in range(a, min(n, a + CHUNK)):
            copy, base = divmod(i, len(docs))
            rows.append(base)
            names.append(words[base] if copy == 0 else f"{words[base]} (copy {copy})")
        vectors = np.array(docs[rows], dtype=np.float32)
        copies = np.array([i // len(docs) for i in range(a, a + len(rows))])
        if copies.any():
            rng = np.random.default_rng(a)
            noise = rng.standard_normal(vectors.shape, dtype=np.float32) * 0.01
            vectors[copies > 0] += noise[copies > 0]
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        yield a, names, vectors


def truth(n: int, queries: np.ndarray) -> np.ndarray:
    """Exact fp32 top 10 (document indexes) of every query over the first ``n`` documents."""
    path = CACHE / f"quant-truth-{n}-{len(queries)}.npy"
    if path.exists():
        return np.load(path)
    best_i = np.zeros((len(queries), 0), dtype=np.int64)
    best_s = np.zeros((len(queries), 0), dtype=np.float32)
    for a, _, vectors in corpus(n):
        scores = queries @ vectors.T
        all_s = np.concatenate([best_s, scores], axis=1)
        all_i = np.concatenate([best_i, np.broadcast_to(
            np.arange(a, a + len(vectors)), scores.shape)], axis=1)
        top = np.argsort(-all_s, axis=1)[:, :10]
        best_s = np.take_along_axis(all_s, top, axis=1)
        best_i = np.take_along_axis(all_i, top, axis=1)
    np.save(path, best_i)
    return best_i


def options(kind: str) -> Any:
    from minilm_qdrant import CollectionOptions

    return CollectionOptions(quantization=None if kind == "none" else kind.split("+")[0])


def quantize_windows() -> None:
    """``int8+windows``: the windows multivector gets the pooled vector's int8 copy too."""
    import qdrant_edge as qe

    from minilm_qdrant.engines import edge, edge_requests

    plain = edge_requests.to_edge_config

    def config(meta: dict[str, Any]) -> Any:
        made = plain(meta)
        vectors = dict(made.vectors)
        w = vectors["windows"]
        vectors["windows"] = qe.EdgeVectorParams(
            size=w.size, distance=w.distance, on_disk=w.on_disk, datatype=w.datatype,
            multivector_config=w.multivector_config, hnsw_config=w.hnsw_config,
            quantization_config=vectors[""].quantization_config)
        return qe.EdgeConfig(vectors=vectors, sparse_vectors=made.sparse_vectors,
                             on_disk_payload=made.on_disk_payload, hnsw_config=made.hnsw_config,
                             optimizers=made.optimizers)

    edge.to_edge_config = config  # type: ignore[assignment]


def build(n: int, kind: str, store: str) -> dict[str, Any]:
    from minilm_qdrant import Collection, Document, Embedder

    if kind.endswith("+windows"):
        quantize_windows()
    embedder = Embedder(MODEL)
    began = time.perf_counter()
    with Collection("bench", embedder, path=store, options=options(kind)) as col:
        for a, names, vectors in corpus(n):
            docs = [Document(t, {"passage": (a + j) % 100_000}, f"p{a + j}")
                    for j, t in enumerate(names)]
            col.upsert(docs, vectors={d.id: v for d, v in zip(docs, vectors, strict=True)
                                      if d.id is not None},
                       optimize=False, skip_unchanged=False)
            print(f"{a + len(docs)}/{n} written, {time.perf_counter() - began:.0f}s",
                  file=sys.stderr, flush=True)
        written = time.perf_counter() - began
        col.optimize()
        assert col.count() == n
    return {"build_s": round(time.perf_counter() - began, 1), "write_s": round(written, 1),
            "build_peak_rss_mb": _status("VmHWM")}


def serve(n: int, kind: str, store: str, count: int) -> dict[str, Any]:
    from minilm_qdrant import Collection

    vectors = np.load(CACHE / "queries.npy")
    claims = [json.loads(q)["text"] for q in (DATA / "queries.jsonl").open()]
    warm, timed = range(20), range(20, 20 + count)
    out: dict[str, Any] = {"n": n, "kind": kind, "queries": count}
    began = time.perf_counter()
    with Collection("bench", path=store, backend=QUERY_BACKEND) as col:
        out["open_s"] = round(time.perf_counter() - began, 2)
        sparse = [col.sparse.encode_query(c) for c in claims] if col.sparse else []

        def run(i: int, mode: str, oversampling: float | None = None) -> list[str]:
            hits = col.search_vector(vectors[i], 10, sparse=sparse[i] if mode != "dense"
                                     else None, mode=mode,  # type: ignore[arg-type]
                                     oversampling=oversampling)
            return [str(h.id) for h in hits]

        for mode in ("dense", "hybrid"):
            for i in warm:
                run(i, mode)
            millis, found = [], []
            for i in timed:
                t = time.perf_counter()
                found.append(run(i, mode))
                millis.append((time.perf_counter() - t) * 1000)
            out[f"{mode}_p50_ms"], out[f"{mode}_p99_ms"] = (
                round(float(v), 2) for v in np.percentile(millis, [50, 99]))
            out[f"{mode}_ids"] = found
        if kind != "none":  # recall and speed across oversampling (rescoring on originals)
            sweep = []
            for factor in OVERSAMPLING:
                millis, found = [], []
                for i in timed:
                    t = time.perf_counter()
                    found.append(run(i, "dense", factor))
                    millis.append((time.perf_counter() - t) * 1000)
                sweep.append({"oversampling": factor, "ids": found,
                              "p50_ms": round(float(np.percentile(millis, 50)), 2)})
            out["sweep"] = sweep
        out["peak_rss_mb"] = _status("VmHWM")
        out["rss_anon_mb"], out["rss_file_mb"] = _status("RssAnon"), _status("RssFile")
        out["rss_by_file_mb"] = _resident_files()
        col.embedder.load()  # a search service embeds its queries: the model's share
        for c in claims[:20]:
            col.search(c, 10)
        out["peak_rss_with_model_mb"] = _status("VmHWM")
    return out


def _status(key: str) -> int:
    line = next(x for x in Path("/proc/self/status").read_text().splitlines()
                if x.startswith(key + ":"))
    return round(int(line.split()[1]) / 1024)


def _resident_files(top: int = 8) -> dict[str, int]:
    """The mapped files with the most resident pages (MB), their paths below the store: what
    the file-backed part of the RSS is."""
    sizes: dict[str, int] = {}
    name = ""
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5:
            name = head[5] if len(head) > 5 else ""
        elif head and head[0] == "Rss:" and name.startswith("/"):
            sizes[name] = sizes.get(name, 0) + int(head[1])
    best = sorted(sizes.items(), key=lambda kv: -kv[1])[:top]
    return {"/".join(k.split("/")[-3:]): round(v / 1024) for k, v in best}


def disk_mb(path: Path) -> float:
    return round(sum(f.stat().st_blocks * 512 for f in path.rglob("*") if f.is_file()) / 1e6, 1)


def child(*args: Any, limit_mb: int | None = None) -> dict[str, Any]:
    """Run a step in a process of its own; with ``limit_mb``, inside a memory cgroup of that
    limit (RAM and the page cache it faults in, as a container's limit counts them), the store's
    pages first dropped from the page cache so that every page it reads is charged to it."""
    group = _cgroup(limit_mb, Path(str(args[-2]))) if limit_mb else None
    proc = subprocess.run([sys.executable, __file__, "child", *map(str, args)],
                          capture_output=True, text=True, check=False,
                          preexec_fn=None if group is None else lambda: _join(group))
    if proc.returncode:
        raise SystemExit(f"child {args} failed: {proc.stderr[-3000:]}")
    row = dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    if group is not None:
        row["memory_limit_mb"] = limit_mb
        row["cgroup_peak_mb"] = round(int((group / _PEAK[group.parent.name]).read_text()) / 2**20)
        group.rmdir()
    return row


_CGROUPS = {"v1": Path("/sys/fs/cgroup/memory"), "v2": Path("/sys/fs/cgroup/unified")}
_PEAK = {"memory": "memory.max_usage_in_bytes", "unified": "memory.peak"}


def _cgroup(limit_mb: int, store: Path) -> Path:
    """A fresh memory cgroup limited to ``limit_mb`` (v1, else v2), the store's files out of
    the page cache (synced, then dropped)."""
    for f in store.rglob("*"):
        if f.is_file():
            fd = os.open(f, os.O_RDONLY)
            try:
                os.fsync(fd)
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)
    root = _CGROUPS["v1"] if (_CGROUPS["v1"] / "memory.limit_in_bytes").exists() \
        else _CGROUPS["v2"]
    group = root / f"quant-bench-{os.getpid()}"
    group.mkdir()
    limit = str(limit_mb * 2**20)
    (group / ("memory.limit_in_bytes" if root == _CGROUPS["v1"] else "memory.max")).write_text(
        limit)
    return group


def _join(group: Path) -> None:
    (group / "cgroup.procs").write_text(str(os.getpid()))


def recall(found: list[list[str]], expected: np.ndarray) -> float:
    return round(float(np.mean([len({f"p{i}" for i in want} & set(got)) / 10
                                for got, want in zip(found, expected, strict=True)])), 4)


def agreement(a: list[list[str]], b: list[list[str]]) -> float:
    return round(float(np.mean([len(set(x) & set(y)) / 10 for x, y in zip(a, b, strict=True)])),
                 4)


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "child":
        step, a = sys.argv[2], sys.argv[3:]
        row = build(int(a[0]), a[1], a[2]) if step == "build" \
            else serve(int(a[0]), a[1], a[2], int(a[3]))
        print(json.dumps(row))
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("part", choices=["run", "table"])
    parser.add_argument("--sizes", nargs="+", type=int, default=[100_000, 300_000])
    parser.add_argument("--kinds", nargs="+", default=["none", "int8", "binary"])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--stores", type=Path, default=Path("/tmp/quant-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the stores")
    parser.add_argument("--memory-limit", type=int, metavar="MB",
                        help="serve inside a memory cgroup of MB (needs root)")
    parser.add_argument("--out", default=str(HERE / "quantization"))
    args = parser.parse_args()
    out = Path(args.out + ".json")
    if args.part == "table":
        print(table(json.loads(out.read_text())["rows"]))
        return
    results = json.loads(out.read_text()) if out.exists() else {"runs": [], "rows": []}
    results["runs"].append({"date": time.strftime("%Y-%m-%d %H:%M"), "argv": sys.argv[1:],
                            "cpu": _cpu(), "load_avg_start": os.getloadavg()})
    queries = np.load(CACHE / "queries.npy")[20:20 + args.queries]
    for n in args.sizes:
        expected = truth(n, queries)
        hybrid_none: list[list[str]] | None = None
        for kind in args.kinds:
            store = args.stores / f"{kind}-{n}"
            if not (store / "bench").exists():
                row = {**child("build", n, kind, store)}
            else:
                row = {"build_s": None}
            row = {**child("serve", n, kind, store, args.queries,
                           limit_mb=args.memory_limit), **row,
                   "disk_mb": disk_mb(store), "load_avg": os.getloadavg()}
            dense, hybrid = row.pop("dense_ids"), row.pop("hybrid_ids")
            row["dense_recall@10"] = recall(dense, expected)
            if kind == "none":
                hybrid_none = hybrid
            if hybrid_none is not None:
                row["hybrid_agreement@10"] = agreement(hybrid, hybrid_none)
            for s in row.get("sweep", []):
                s["recall@10"] = recall(s.pop("ids"), expected)
            results["rows"].append(row)
            out.write_text(json.dumps(results, indent=1) + "\n")
            print(json.dumps(row), flush=True)
            if not args.keep:
                subprocess.run(["rm", "-rf", str(store)], check=True)


COLUMNS = [("n", "points"), ("kind", "quantization"), ("limit", "memory limit MB"),
           ("build_s", "build s"), ("disk_mb", "disk MB"),
           ("rss", "search peak RSS MB (anon + file)"), ("cold", "dense p50 / p99 ms, cold"),
           ("warm", "dense p50 ms, warm"), ("dense_recall@10", "dense recall@10"),
           ("hybrid", "hybrid p50 / p99 ms"), ("hybrid_agreement@10", "hybrid = unquantized@10")]


def _cells(r: dict[str, Any]) -> dict[str, Any]:
    """A row's table cells: the cold pass (the first queries on a freshly opened store) and
    the warm p50 at the quantization's default oversampling (the sweep's, run after it)."""
    from minilm_qdrant.engines import OVERSAMPLING as DEFAULT

    warm = next((f"{x['p50_ms']} (x{x['oversampling']:g})" for x in r.get("sweep", [])
                 if x["oversampling"] == DEFAULT.get(r["kind"])), "")
    return {**r, "limit": r.get("memory_limit_mb", "none"),
            "rss": f"{r['peak_rss_mb']:,} ({r['rss_anon_mb']:,} + {r['rss_file_mb']:,})",
            "cold": f"{r['dense_p50_ms']} / {r['dense_p99_ms']}", "warm": warm,
            "hybrid": f"{r['hybrid_p50_ms']} / {r['hybrid_p99_ms']}"}


def table(rows: list[dict[str, Any]]) -> str:
    """The rows as Markdown, and each quantized row's oversampling sweep."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |",
             "|" + "---:|" * len(COLUMNS)]
    for r in map(_cells, rows):
        lines.append("| " + " | ".join(f"{r[k]:,}" if isinstance(r.get(k), (int, float))
                                       and k != "dense_recall@10" and k != "hybrid_agreement@10"
                                       else str(r.get(k, "")) for k, _ in COLUMNS) + " |")
    lines += ["", "Dense recall@10 / p50 ms across oversampling (warm, after the cold pass):", "",
              "| points | quantization | memory limit MB | " + " | ".join(
                  f"x{f:g}" for f in OVERSAMPLING) + " |",
              "|" + "---:|" * (3 + len(OVERSAMPLING))]
    lines += [f"| {r['n']:,} | {r['kind']} | {r.get('memory_limit_mb', 'none')} | " + " | ".join(
        f"{s['recall@10']} / {s['p50_ms']}" for s in r["sweep"]) + " |"
        for r in rows if r.get("sweep")]
    return "\n".join(lines)


def _cpu() -> str:
    return next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                 if line.startswith("model name")), "")


if __name__ == "__main__":
    main()
