"""Does Qdrant's search lose anything? Compare `minilm-qdrant eval`'s run with an exact search.

Indexes a BEIR data set (or reuses the index in --path / --url), runs every judged query
through the Qdrant search path, then runs the same query vectors against the same stored
vectors with a brute-force numpy dot product, and compares the metrics of both runs.
Exits 1 when the NDCG@10 difference exceeds --tolerance.

    python benchmarks/eval_exact.py ../shared/data/scifact --split train \
        --model all-MiniLM-L6-v2 --path /tmp/scifact_store
"""

from __future__ import annotations

import argparse
import sys
import tempfile

from minilm_qdrant import Collection, Embedder
from minilm_qdrant import evaluation as beir


def main(argv: list[str] | None = None) -> int:
    """Run both searches, print the comparison, return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory")
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--path", help="embedded store to index into or reuse")
    parser.add_argument("--url", help="Qdrant server URL (instead of --path)")
    parser.add_argument("--collection", default="beir-exact-check")
    parser.add_argument("--tolerance", type=float, default=0.002)
    args = parser.parse_args(argv)

    data = beir.load_beir(args.directory, args.split)
    with tempfile.TemporaryDirectory() as tmp, Collection(
        args.collection, Embedder(args.model), path=None if args.url else (args.path or tmp),
        url=args.url,
    ) as col:
        col.embedder.load()
        report = beir.ensure_indexed(col, data)
        qdrant_run, _ = beir.run_queries(col, data.queries)
        exact_run = beir.exact_run(col, data.queries)
    qdrant, exact = beir.metrics(data.qrels, qdrant_run), beir.metrics(data.qrels, exact_run)

    same_top10 = sum(_top(qdrant_run[q], 10) == _top(exact_run[q], 10) for q in data.queries)
    score_gap = max(abs(qdrant_run[q][d] - exact_run[q].get(d, float("nan")))
                    for q in data.queries for d in _top(qdrant_run[q], 10))
    print(f"{len(data.queries)} queries, {len(data.doc_ids)} documents, {args.model}, "
          f"index {f'built in {report.seconds:.1f}s' if report else 'reused'}")
    print(f"{'measure':<12}{'qdrant':>10}{'exact':>10}{'diff':>10}")
    for name, value in qdrant.items():
        print(f"{name:<12}{value:>10.4f}{exact[name]:>10.4f}{value - exact[name]:>+10.4f}")
    print(f"queries with the identical top-10 ranking: {same_top10}/{len(data.queries)}")
    print(f"largest score difference over the top-10 hits: {score_gap:.2e}")
    diff = abs(qdrant["ndcg@10"] - exact["ndcg@10"])
    verdict = "OK" if diff <= args.tolerance else "FAIL"
    print(f"{verdict}: |NDCG@10 difference| = {diff:.4f} (tolerance {args.tolerance})")
    return 0 if diff <= args.tolerance else 1


def _top(ranking: dict[str, float], k: int) -> list[str]:
    return sorted(ranking, key=lambda d: (-ranking[d], d))[:k]


if __name__ == "__main__":
    sys.exit(main())
