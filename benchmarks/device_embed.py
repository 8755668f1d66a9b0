"""A whole long set measured here, its model passes run on a lent accelerator.

IRLeD 2017 whole (2,000 judgments and 200 judgment-long queries, ~26M word pieces embedded)
took 56 minutes of int8 on 2 CPU cores (fp32: about 4x that). Where a session is lent a GPU
machine, only the model's
forward passes go there; cutting, storing, BM25, search and scoring run here through the real
pipeline (`benchmarks/windows.py quality`: `Collection`, Edge, `eval`), with the backend
replaced by a table of the vectors the GPU made for exactly the texts the pipeline asks for.

    PYTHONPATH=src python benchmarks/device_embed.py prepare irled2017:dev .dev/irled   # here
    python3 benchmarks/device_embed.py embed .dev/irled OUTDIR          # on the GPU machine
    PYTHONPATH=src python benchmarks/device_embed.py quality irled2017:dev .dev/irled OUTDIR \
        --cache DIR                                                     # here

``prepare`` writes the set's texts as the pipeline stores them (xz), each text's window spans
(cut here, by `Windows`) and the model with its weights rounded to fp16 (the transfer is
bounded); ``embed`` runs the model in fp32 on CUDA (sentence-transformers: mean pooling,
normalised) over every window and every whole text (the truncated layout's one vector: the
model reads its first 256 word pieces) and returns them as int8 with a scale per row (cosine
to the fp32 vector > 0.9999); ``quality`` checks that the texts match (a digest) and runs
both layouts in every mode, and writes the rows to ``device-embed.json`` beside this file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import lzma
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROWS_PER_FILE = 40_000
"""int8 rows of 384 per returned file (the transfer takes files of up to 16 MiB)."""


def unique_texts(texts: list[str], spans: list[list[tuple[int, int]]]) -> list[str]:
    """Every string the pipeline embeds, once each, in a fixed order: each text's windows,
    then the text whole."""
    seen: dict[str, None] = {}
    for text, cut in zip(texts, spans, strict=True):
        for a, b in cut:
            seen.setdefault(text[a:b])
        seen.setdefault(text)
    return list(seen)


def digest(strings: list[str]) -> str:
    h = hashlib.sha256()
    for s in strings:
        h.update(s.encode())
        h.update(b"\0")
    return h.hexdigest()


def prepare(item: str, out: Path) -> None:
    from windows import MODEL, SHARED

    from minilm_qdrant import Embedder
    from minilm_qdrant.evaluation import load_beir
    from minilm_qdrant.windows import Windows, WindowSettings

    root, split = item.rsplit(":", 1)
    data = load_beir(SHARED / root, split)
    texts = [d.text for d in data.documents()] + list(data.queries.values())
    embedder = Embedder(MODEL)
    spans = Windows.of(embedder, WindowSettings()).cut(texts)
    out.mkdir(parents=True, exist_ok=True)
    with lzma.open(out / "texts.jsonl.xz", "wt", preset=6) as f:
        for text, cut in zip(texts, spans, strict=True):
            f.write(json.dumps({"text": text, "spans": cut}) + "\n")
    model = out / "model"
    shutil.copytree(embedder.model_path, model, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("model.safetensors", "README.md"))
    from safetensors.numpy import load_file, save_file

    weights = load_file(str(embedder.model_path / "model.safetensors"))
    save_file({k: v.astype(np.float16) if v.dtype == np.float32 else v
               for k, v in weights.items()}, str(model / "model.safetensors"))
    strings = unique_texts(texts, spans)
    print(json.dumps({"texts": len(texts), "windows": sum(map(len, spans)),
                      "strings": len(strings), "digest": digest(strings)}))


def load_prepared(prepared: Path) -> tuple[list[str], list[list[tuple[int, int]]]]:
    texts, spans = [], []
    with lzma.open(prepared / "texts.jsonl.xz", "rt") as f:
        for line in f:
            row = json.loads(line)
            texts.append(row["text"])
            spans.append([tuple(s) for s in row["spans"]])
    return texts, spans


def embed(prepared: Path, out: Path) -> None:
    import time

    import torch
    from sentence_transformers import SentenceTransformer

    texts, spans = load_prepared(prepared)
    strings = unique_texts(texts, spans)
    device = os.environ.get("DEVICE", "cuda")
    model = SentenceTransformer(str(prepared / "model"), device=device).float()
    model.max_seq_length = 256
    began = time.time()
    vectors = model.encode(strings, batch_size=512, convert_to_tensor=True,
                           normalize_embeddings=True, show_progress_bar=False)
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.time() - began
    v = vectors.float().cpu().numpy()
    scale = np.abs(v).max(axis=1, keepdims=True) / 127.0
    q = np.round(v / scale).astype(np.int8)
    back = q.astype(np.float32) * scale
    cos = (back * v).sum(1) / np.linalg.norm(back, axis=1)
    out.mkdir(parents=True, exist_ok=True)
    for i in range(0, len(q), ROWS_PER_FILE):
        np.save(out / f"vectors-{i // ROWS_PER_FILE}.npy", q[i:i + ROWS_PER_FILE])
    np.save(out / "scales.npy", scale.astype(np.float32))
    meta = {"strings": len(strings), "digest": digest(strings), "seconds": round(seconds, 1),
            "gpu": torch.cuda.get_device_name() if device == "cuda" else device,
            "torch": torch.__version__,
            "min_cos_int8": float(cos.min())}
    (out / "meta.json").write_text(json.dumps(meta))
    print(json.dumps(meta))


class TableBackend:
    """A backend that hands back the vectors the GPU made, for exactly those texts."""

    def __init__(self, table: dict[str, np.ndarray], tokenizer: Any, limit: int) -> None:
        self.table, self.tokenizer, self.limit = table, tokenizer, limit

    def encode(self, texts: list[str], batch_size: int) -> Any:
        from minilm_qdrant.backends import Encoded

        missing = [t[:60] for t in texts if t not in self.table]
        if missing:
            raise KeyError(f"{len(missing)} texts were not embedded on the device: {missing[:3]}")
        lengths = [len(e.ids) for e in self.tokenizer.encode_batch(texts)]
        cut = [min(n, self.limit) for n in lengths]
        vectors = np.stack([self.table[t] for t in texts])
        return Encoded(vectors, sum(n > self.limit for n in lengths), sum(cut), sum(cut))


def quality(item: str, prepared: Path, returned: Path, cache: Path) -> None:
    import time

    from windows import MODEL, cpu
    from windows import quality as run_quality

    from minilm_qdrant import Embedder

    texts, spans = load_prepared(prepared)
    strings = unique_texts(texts, spans)
    meta = json.loads((returned / "meta.json").read_text())
    if meta["digest"] != digest(strings):
        sys.exit("the device embedded other texts than these: prepare again")
    files = sorted(returned.glob("vectors-*.npy"), key=lambda p: int(p.stem.split("-")[1]))
    q = np.concatenate([np.load(f) for f in files]).astype(np.float32)
    v = q * np.load(returned / "scales.npy")
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    table = dict(zip(strings, v, strict=True))
    embedder = Embedder(MODEL, backend="torch")
    backend = TableBackend(table, embedder.tokenizer(), embedder.spec.max_tokens)
    embedder._backend = embedder._query_backend = backend  # type: ignore[assignment]
    rows = run_quality([item], cache, "torch", ["windows", "truncated"], embedder=embedder,
                       note={"vectors": f"fp32 on {meta['gpu']} (fp16-rounded weights), int8 "
                                        f"transfer (min cosine {meta['min_cos_int8']:.5f})"})
    (HERE / "device-embed.json").write_text(json.dumps(
        {"meta": {**cpu(), "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:],
                  "device": meta}, "rows": rows}, indent=1) + "\n")


def main() -> None:
    sys.path.insert(0, str(HERE))
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="part", required=True)
    p = sub.add_parser("prepare")
    p.add_argument("set")
    p.add_argument("out", type=Path)
    e = sub.add_parser("embed")
    e.add_argument("prepared", type=Path)
    e.add_argument("out", type=Path)
    q = sub.add_parser("quality")
    q.add_argument("set")
    q.add_argument("prepared", type=Path)
    q.add_argument("returned", type=Path)
    q.add_argument("--cache", type=Path, required=True)
    args = parser.parse_args()
    if args.part == "prepare":
        prepare(args.set, args.out)
    elif args.part == "embed":
        embed(args.prepared, args.out)
    else:
        quality(args.set, args.prepared, args.returned, args.cache)


if __name__ == "__main__":
    main()
