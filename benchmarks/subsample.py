"""Cut a BEIR set down to a sample that 2 cores can embed in minutes.

IRLeD 2017 holds ~20M word pieces of judgments (about 90 minutes of embedding here); its
queries are whole judgments. The sample keeps ``--queries`` random queries of a split, every
document judged relevant to them and random others up to ``--docs``, in the set's own order,
so a run on it is reproducible (``--seed``) and comparable across layouts and modes.

    python benchmarks/subsample.py ../shared/data/irled2017 /tmp/irled2017-sub50 \
        --split dev --queries 50 --docs 500
"""

from __future__ import annotations

import argparse
import csv
import json
import random
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="a BEIR directory")
    parser.add_argument("target", type=Path, help="where the sample is written")
    parser.add_argument("--split", default="dev")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--docs", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    with (args.source / "qrels" / f"{args.split}.tsv").open() as f:
        rows = [r for r in csv.DictReader(f, delimiter="\t") if int(r["score"]) > 0]
    judged = sorted({r["query-id"] for r in rows})
    rng = random.Random(args.seed)
    chosen = set(rng.sample(judged, min(args.queries, len(judged))))
    kept = [r for r in rows if r["query-id"] in chosen]
    relevant = {r["corpus-id"] for r in kept}

    corpus = [json.loads(line) for line in (args.source / "corpus.jsonl").open()]
    others = sorted(d["_id"] for d in corpus if d["_id"] not in relevant)
    docs = relevant | set(rng.sample(others, max(0, min(args.docs - len(relevant), len(others)))))

    (args.target / "qrels").mkdir(parents=True, exist_ok=True)
    with (args.target / "corpus.jsonl").open("w") as f:
        f.writelines(json.dumps(d) + "\n" for d in corpus if d["_id"] in docs)
    queries = (args.source / "queries.jsonl").read_text().splitlines(keepends=True)
    with (args.target / "queries.jsonl").open("w") as f:
        f.writelines(line for line in queries if json.loads(line)["_id"] in chosen)
    with (args.target / "qrels" / f"{args.split}.tsv").open("w") as f:
        f.write("query-id\tcorpus-id\tscore\n")
        f.writelines(f"{r['query-id']}\t{r['corpus-id']}\t{r['score']}\n" for r in kept)
    print(f"{len(chosen)} queries, {len(docs)} documents ({len(relevant)} judged) -> {args.target}")


if __name__ == "__main__":
    main()
