"""Real MiniLM vectors at 100k scale, from SciFact text, for the store and query benchmarks.

    python benchmarks/real_vectors.py [--n 100000] [--backend onnx-int8] [--out DIR]

SciFact has 5,183 abstracts; chunked the way RAG pipelines chunk (titles, single sentences,
overlapping two-sentence windows, three-sentence chunks) they give about 100,000 real passages.
Writes ``docs.npy`` (passages, document prompt) and ``queries.npy`` (the 809 claims, query
prompt) to DIR (default ``benchmarks/.cache``): all-MiniLM-L6-v2 vectors, unit length.
"""

from __future__ import annotations

import argparse
import itertools
import json
import re
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "scifact"
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9])")


def passages(corpus: Path) -> list[str]:
    """Titles, sentences and two-sentence windows of every abstract, in corpus order."""
    out: list[str] = []
    for line in corpus.open(encoding="utf-8"):
        doc = json.loads(line)
        sentences = [s for s in _SENTENCE.split(doc["text"]) if len(s) > 20]
        out.append(doc["title"])
        out += sentences
        out += [f"{a} {b}" for a, b in itertools.pairwise(sentences)]
        out += [" ".join(sentences[i:i + 3]) for i in range(0, len(sentences) - 2, 3)]
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / ".cache")
    args = parser.parse_args()
    from minilm_qdrant.embedder import Embedder

    args.out.mkdir(parents=True, exist_ok=True)
    texts = passages(args.data / "corpus.jsonl")[: args.n]
    claims = [json.loads(q)["text"] for q in (args.data / "queries.jsonl").open()]
    embedder = Embedder("all-MiniLM-L6-v2", backend=args.backend, batch_size=256)
    start = time.perf_counter()
    np.save(args.out / "queries.npy", embedder.embed_queries(claims))
    parts = []
    for a in range(0, len(texts), 5000):
        parts.append(embedder.embed_documents(texts[a:a + 5000], warn=False))
        print(f"{a + len(parts[-1])}/{len(texts)} passages, {time.perf_counter() - start:.0f}s",
              flush=True)
    np.save(args.out / "docs.npy", np.concatenate(parts))
    print(json.dumps({"passages": len(texts), "queries": len(claims), "backend": args.backend,
                      "seconds": round(time.perf_counter() - start)}))


if __name__ == "__main__":
    main()
