"""Rerunning an ingest: a finished one, and one interrupted half-way, beside a fresh ingest.

    PYTHONPATH=src python benchmarks/resume.py [--backend auto]

SciFact (5,183 abstracts) through `Collection.upsert` into the embedded store, in one process
(weights loaded before timing): (1) a fresh ingest; (2) the same ingest again (everything
stored unchanged: looked up per batch, skipped); (3) a fresh store given the first half, then
the whole corpus (the rerun of an ingest stopped half-way). Writes ``resume.md`` / ``.json``.
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
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    from minilm_qdrant import Collection, Embedder
    from minilm_qdrant.evaluation import load_beir

    docs = list(load_beir(DATA, "train").documents())
    embedder = Embedder("all-MiniLM-L6-v2", backend=args.backend)
    embedder.embed_documents([d.text for d in docs[:64]], warn=False)  # load and warm up
    rows = {}

    def timed(col: Collection, part: list) -> dict[str, float]:
        start = time.perf_counter()
        report = col.upsert(part)
        return {"seconds": round(time.perf_counter() - start, 2), "written": report.written,
                "unchanged": report.unchanged}

    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Collection("scifact", embedder, path=tmp) as col:
            rows["fresh ingest"] = timed(col, docs)
            rows["rerun of the finished ingest"] = timed(col, docs)
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        with Collection("scifact", embedder, path=tmp) as col:
            rows["first half (then stopped)"] = timed(col, docs[: len(docs) // 2])
            rows["rerun after the half-way stop"] = timed(col, docs)
    fresh = rows["fresh ingest"]["seconds"]
    lines = [f"SciFact, {len(docs):,} documents, `{args.backend}`, embedded store, one run", "",
             "| run | seconds | share of a fresh ingest | written | unchanged (skipped) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['seconds']} | {r['seconds'] / fresh:.1%} | {r['written']} "
                     f"| {r['unchanged']} |")
    (HERE / "resume.json").write_text(json.dumps(rows, indent=2))
    (HERE / "resume.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
