"""`tune` on SciFact: time by CPU class, held-out NDCG@10 before and after, dense and hybrid.

    PYTHONPATH=src python benchmarks/tune.py [--runs heldout,test] [--epochs 3]

Runs the real CLI (``minilm-qdrant tune ... --json``) from all-MiniLM-L6-v2:
- ``heldout``: the train claims, ``--dev-fraction 0.2`` (80% trained on, 20% scored);
- ``test``: all train claims trained on, gated on BEIR's test claims (``--dev-split test``),
  then ``eval --model DIR --split test`` (dense and hybrid) on the written model: claims it
  was never tuned on, through `eval` alone.
Writes ``tune.md`` / ``tune.json``.
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

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
CLI = [sys.executable, "-c", "from minilm_qdrant.cli import main; main()"]


def cpu_class() -> str:
    flags = Path("/proc/cpuinfo").read_text().split()
    name = next((line.split(":", 1)[1].strip() for line in
                 Path("/proc/cpuinfo").read_text().splitlines() if "model name" in line),
                platform.processor())
    kind = ("AMX + AVX-512 BF16" if "amx_bf16" in flags else
            "AVX-512 BF16" if "avx512_bf16" in flags else
            "AVX-512 VNNI" if "avx512_vnni" in flags else "AVX2")
    return f"{name}, {os.cpu_count()} cores, {kind}"


def run(args: list[str]) -> dict:
    began = time.perf_counter()
    done = subprocess.run([*CLI, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-3000:]}")
    found = json.loads(done.stdout.strip().splitlines()[-1])
    found["wall_seconds"] = round(time.perf_counter() - began, 1)
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", default="heldout,test")
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    out_json = HERE / "tune.json"
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    results["cpu"] = cpu_class()
    base = ["--model", "all-MiniLM-L6-v2", "--epochs", str(args.epochs), "--json"]
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        if "heldout" in args.runs:
            results["heldout"] = run(["tune", str(DATA), "--out", f"{tmp}/heldout",
                                      "--dev-fraction", "0.2", *base])
            out_json.write_text(json.dumps(results, indent=2))
        if "test" in args.runs:
            results["test"] = run(["tune", str(DATA), "--out", f"{tmp}/all-train",
                                   "--dev-split", "test", *base])
            for mode in ("dense", "hybrid"):
                results["test"][f"eval_{mode}"] = run(
                    ["eval", str(DATA), "--split", "test", "--model", f"{tmp}/all-train",
                     "--mode", mode, "--json"])
            out_json.write_text(json.dumps(results, indent=2))
    write_markdown(results)


def write_markdown(r: dict) -> None:
    lines = [f"`tune` on SciFact from all-MiniLM-L6-v2, one run; CPU: {r['cpu']}.", "",
             "| run | queries trained / scored | pairs | training time | dense NDCG@10 "
             "before -> after | hybrid NDCG@10 before -> after |", "|---|---|---:|---:|---|---|"]
    labels = {"heldout": "train claims, --dev-fraction 0.2 (held-out 20%)",
              "test": "all train claims, scored on the test claims (--dev-split test)"}
    for key, label in labels.items():
        if key not in r:
            continue
        t = r[key]
        cells = [f"{t['before'][m]:.4f} -> **{t['after'][m]:.4f}** "
                 f"({t['after'][m] - t['before'][m]:+.4f})" for m in ("dense", "hybrid")]
        lines.append(f"| {label} | {t['train_queries']} / {t['dev_queries']} | {t['pairs']} | "
                     f"{t['seconds'] / 60:.1f} min ({t['wall_seconds'] / 60:.1f} min in all) | "
                     f"{cells[0]} | {cells[1]} |")
    if "test" in r and "eval_dense" in r["test"]:
        e = r["test"]
        lines += ["", "The model tuned on all train claims, through `eval --model DIR --split test`"
                  f": dense {e['eval_dense']['ndcg@10']:.4f}, hybrid "
                  f"{e['eval_hybrid']['ndcg@10']:.4f} (tune's own gate said dense "
                  f"{e['after']['dense']:.4f}, hybrid {e['after']['hybrid']:.4f})."]
    (HERE / "tune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
