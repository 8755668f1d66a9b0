"""`reembed` of SciFact (5,183 documents) beside a fresh index of the same documents.

    PYTHONPATH=src python benchmarks/reembed.py [--model DIR] [--backend auto]

One process, weights loaded before timing: (1) a fresh index of the corpus with the new model;
(2) the corpus indexed with all-MiniLM-L6-v2, then `Collection.reembed` to the new model from
the stored text (no source files), checked: same count, ids and metadata; (3) `--swap`.
The new model defaults to all-MiniLM-L6-v2 with CLS pooling (another fingerprint, the same
cost as any MiniLM-L6); pass a tuned folder with ``--model``. Writes ``reembed.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default=None)
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    from minilm_qdrant import Collection, Embedder
    from minilm_qdrant.evaluation import load_beir

    docs = list(load_beir(DATA, "train").documents())
    old = Embedder("all-MiniLM-L6-v2", backend=args.backend)
    new = (Embedder(args.model, backend=args.backend) if args.model else
           Embedder("all-MiniLM-L6-v2", backend=args.backend, pooling="cls"))
    for e in (old, new):
        e.embed_documents([d.text for d in docs[:64]], warn=False)  # load and warm up
    rows: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Collection("fresh", new, path=f"{tmp}/a") as col:
            began = time.perf_counter()
            col.upsert(docs)
            rows["fresh index with the new model"] = {"seconds": time.perf_counter() - began}
        with Collection("scifact", old, path=f"{tmp}/b") as col:
            col.upsert(docs)
            before = {str(d.id): d for d in col.find()}
            report = col.reembed(new)
            rows["reembed from the stored text"] = {"seconds": report.seconds}
            target = Collection(report.target, engine=col.engine)
            after = {str(d.id): d for d in target.find()}
            same = after == before and report.points == len(docs) == col.count()
            began = time.perf_counter()
            col.swap(report.target)
            rows["--swap"] = {"seconds": time.perf_counter() - began}
    for r in rows.values():
        r["docs_per_s"] = round(len(docs) / r["seconds"], 1) if r["seconds"] > 0.5 else 0.0
        r["seconds"] = round(r["seconds"], 3)
    fresh = rows["fresh index with the new model"]["seconds"]
    lines = [f"SciFact, {len(docs):,} documents, `{args.backend}`, embedded store, one run; new "
             f"model {new.spec.name} (pooling {new.spec.pooling}). Same count, ids, texts and "
             f"metadata after the reembed: {'yes' if same else 'NO'}.", "",
             "| run | seconds | docs/s | vs a fresh index |", "|---|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['seconds']} | {r['docs_per_s'] or '-'} | "
                     f"{r['seconds'] / fresh:.2f}x |")
    (HERE / "reembed.json").write_text(json.dumps({"same": same, **rows}, indent=2))
    (HERE / "reembed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
