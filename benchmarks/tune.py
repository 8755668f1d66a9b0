"""`tune` on SciFact: time by CPU class, held-out NDCG@10 before and after, dense and hybrid.

    PYTHONPATH=src python benchmarks/tune.py [--runs heldout,test] [--seed 42] [--epochs 3]

Runs the real CLI (``minilm-qdrant tune ... --json``) from all-MiniLM-L6-v2:
- ``heldout``: the train claims, ``--dev-fraction 0.2 --seed S`` (80% trained on, 20% scored),
  then ``eval --model DIR`` on a BEIR view holding only those 20% (``qrels/dev.tsv``), for the
  tuned and the base model, dense and hybrid: the gate's figures through `eval` alone;
- ``test`` (where ``qrels/test.tsv`` exists; the SciFact copy here has only train): all train
  claims trained on, gated on BEIR's test claims (``--dev-split test``), then
  ``eval --model DIR --split test``: claims it was never tuned on.
Writes ``tune.md`` / ``tune.json`` (one entry per run and seed).
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
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    out_json = HERE / "tune.json"
    results = json.loads(out_json.read_text()) if out_json.exists() else {}
    results["cpu"] = cpu_class()
    base = ["--model", "all-MiniLM-L6-v2", "--epochs", str(args.epochs), "--json"]
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        if "heldout" in args.runs:
            key = f"heldout-seed{args.seed}"
            out = f"{tmp}/heldout"
            results[key] = run(["tune", str(DATA), "--out", out, "--dev-fraction", "0.2",
                                "--seed", str(args.seed), *base])
            view = dev_view(Path(tmp) / "dev-view", args.seed)
            for model in (out, "all-MiniLM-L6-v2"):
                for mode in ("dense", "hybrid"):
                    who = "tuned" if model == out else "base"
                    results[key][f"eval_{who}_{mode}"] = run(
                        ["eval", str(view), "--split", "dev", "--model", model, "--mode", mode,
                         "--json"])
            out_json.write_text(json.dumps(results, indent=2))
        if "test" in args.runs and (DATA / "qrels" / "test.tsv").exists():
            results["test"] = run(["tune", str(DATA), "--out", f"{tmp}/all-train",
                                   "--dev-split", "test", *base])
            for mode in ("dense", "hybrid"):
                results["test"][f"eval_tuned_{mode}"] = run(
                    ["eval", str(DATA), "--split", "test", "--model", f"{tmp}/all-train",
                     "--mode", mode, "--json"])
            out_json.write_text(json.dumps(results, indent=2))
    write_markdown(results)


def dev_view(root: Path, seed: int) -> Path:
    """A BEIR directory over the same corpus whose ``qrels/dev.tsv`` holds the held-out
    queries of ``--dev-fraction 0.2 --seed`` (drawn by the same code as tune)."""
    from minilm_qdrant.evaluation.labelled import load_labelled

    labelled = load_labelled(DATA, dev_fraction=0.2, seed=seed, workdir=root.parent)
    (root / "qrels").mkdir(parents=True)
    for name in ("corpus.jsonl", "queries.jsonl"):
        (root / name).symlink_to(DATA / name)
    lines = ["query-id\tcorpus-id\tscore"] + [
        f"{q}\t{d}\t{s}" for q, docs in labelled.dev.qrels.items() for d, s in docs.items()]
    (root / "qrels" / "dev.tsv").write_text("\n".join(lines) + "\n")
    return root


def write_markdown(r: dict) -> None:
    lines = [f"`tune` on SciFact from all-MiniLM-L6-v2, one run; CPU: {r['cpu']}.", "",
             "| run | queries trained / scored | pairs | training time | dense NDCG@10 "
             "before -> after | hybrid NDCG@10 before -> after |", "|---|---|---:|---:|---|---|"]
    runs = {k: v for k, v in r.items() if k.startswith("heldout-") or k == "test"}
    for key, t in runs.items():
        label = (f"train claims, --dev-fraction 0.2 --seed {key.rpartition('seed')[2]}"
                 if key != "test" else "all train claims, scored on the test claims")
        cells = [f"{t['before'][m]:.4f} -> **{t['after'][m]:.4f}** "
                 f"({t['after'][m] - t['before'][m]:+.4f})" for m in ("dense", "hybrid")]
        lines.append(f"| {label} | {t['train_queries']} / {t['dev_queries']} | {t['pairs']} | "
                     f"{t['seconds'] / 60:.1f} min ({t['wall_seconds'] / 60:.1f} min in all) | "
                     f"{cells[0]} | {cells[1]} |")
    for key, t in runs.items():
        if "eval_tuned_dense" in t:
            base = (f"; base model {t['eval_base_dense']['ndcg@10']:.4f} / "
                    f"{t['eval_base_hybrid']['ndcg@10']:.4f}" if "eval_base_dense" in t else "")
            lines += ["", f"{key}: the written model through `eval --model DIR` on the same "
                      f"held-out claims: dense {t['eval_tuned_dense']['ndcg@10']:.4f}, hybrid "
                      f"{t['eval_tuned_hybrid']['ndcg@10']:.4f}{base} (the gate said "
                      f"{t['after']['dense']:.4f} / {t['after']['hybrid']:.4f})."]
    (HERE / "tune.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
