"""Two versions of the code side by side, whole processes, alternating each round: `index` of
the first N SciFact abstracts (docs/s), then 200 hybrid searches of SciFact claims (p50 ms,
after 20 warm-up) on the store it made; per-round ratios, since a VM drifts over a run.

    git worktree add /tmp/before 7b872b4 && git worktree add /tmp/after 173c478
    python benchmarks/ab_versions.py /tmp/before/src /tmp/after/src [--docs 1500] [--rounds 3]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SCIFACT = Path(os.environ.get("SCIFACT", Path(__file__).resolve().parents[2] / "shared" / "data"
                              / "scifact"))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("before")
parser.add_argument("after")
parser.add_argument("--docs", type=int, default=1500)
parser.add_argument("--rounds", type=int, default=3)
args = parser.parse_args()
CODE = {"before": args.before, "after": args.after}
work = Path(tempfile.mkdtemp(prefix="ab-", dir="/tmp"))
DOCS = str(work / "docs.jsonl")
with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as src, open(DOCS, "w") as out:
    for _, line in zip(range(args.docs), src, strict=False):
        out.write(line)
QUERY = r'''
import sys, time, json, statistics
from minilm_qdrant import Collection
qs = [json.loads(l)["text"] for l in open(sys.argv[2])][:220]
with Collection("bench", path=sys.argv[1]) as col:
    for q in qs[:20]: col.search(q, k=10)
    t = []
    for q in qs[20:]:
        s = time.perf_counter(); col.search(q, k=10); t.append((time.perf_counter() - s) * 1000)
print(statistics.median(t))
'''
rows = []
for r in range(args.rounds):
    names = list(CODE) if r % 2 == 0 else list(CODE)[::-1]
    for name in names:
        env = {**os.environ, "PYTHONPATH": CODE[name], "HF_HUB_OFFLINE": "1"}
        with tempfile.TemporaryDirectory(dir="/tmp") as d:
            began = time.perf_counter()
            subprocess.run([sys.executable, "-c", "from minilm_qdrant.cli import main; main()",
                            "index", DOCS, "--path", d + "/s", "--model", "all-MiniLM-L6-v2",
                            "-c", "bench"], env=env, check=True, capture_output=True)
            seconds = time.perf_counter() - began
            p50 = float(subprocess.run([sys.executable, "-c", QUERY, d + "/s",
                                        str(SCIFACT / "queries.jsonl")], env=env, check=True,
                                       capture_output=True, text=True).stdout)
        row = {"round": r + 1, "code": name, "index_s": round(seconds, 2),
               "docs_per_s": round(args.docs / seconds, 1), "hybrid_p50_ms": round(p50, 2),
               "load": os.getloadavg()[0]}
        rows.append(row)
        print(json.dumps(row), flush=True)
ingest, query = [], []
for r in range(1, args.rounds + 1):
    a, b = (next(x for x in rows if x["round"] == r and x["code"] == c) for c in CODE)
    ingest.append(b["docs_per_s"] / a["docs_per_s"])
    query.append(b["hybrid_p50_ms"] / a["hybrid_p50_ms"])
    print(f"round {r}: ingest after/before {ingest[-1]:.2f}x, hybrid p50 {query[-1]:.2f}x")
print(f"paired medians: ingest {statistics.median(ingest):.2f}x, "
      f"hybrid p50 {statistics.median(query):.2f}x")
