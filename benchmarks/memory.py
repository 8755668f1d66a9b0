"""Peak RSS of `minilm-qdrant index` at 1x and 10x a corpus: memory must not grow with it.

    PYTHONPATH=src python benchmarks/memory.py [--base 5183] [--times 10] [--backend onnx-int8]

The corpus (SciFact, ``--base`` documents) is replicated ``--times`` times with new ids into a
JSONL file; each size is indexed by the CLI in its own process into a fresh embedded store,
and that process's peak RSS is read from the kernel (``wait4``). Writes ``memory.md``/``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))


def replicate(base: int, times: int, dest: Path) -> int:
    docs = [json.loads(line) for line in (DATA / "corpus.jsonl").open()][:base]
    with dest.open("w", encoding="utf-8") as out:
        for copy in range(times):
            for d in docs:
                text = (d.get("title", "") + " " + d["text"]).strip()
                out.write(json.dumps({"id": f"{d['_id']}-{copy}", "text": text}) + "\n")
    return len(docs) * times


def index(file: Path, backend: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory(dir="/tmp") as store, tempfile.TemporaryFile("w+") as log:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "index",
             str(file), "--path", store, "--model", "all-MiniLM-L6-v2", "--backend", backend],
            stdout=log, stderr=subprocess.STDOUT, text=True,
        )
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        log.seek(0)
        out = log.read()
        if status:
            raise SystemExit(f"index failed: {out[-2000:]}")
    print(out.strip()[-1000:], flush=True)
    return {"seconds": round(seconds, 1), "peak_rss_mib": round(usage.ru_maxrss / 1024)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", type=int, default=5183)
    parser.add_argument("--times", type=int, default=10)
    parser.add_argument("--backend", default="onnx-int8")
    parser.add_argument("--out", default=str(HERE / "memory"))
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        for times in (1, args.times):
            file = Path(tmp) / f"corpus-x{times}.jsonl"
            n = replicate(args.base, times, file)
            row = {"docs": n, "times": times, **index(file, args.backend)}
            row["docs_per_s"] = round(n / row["seconds"], 1)
            rows.append(row)
            print(json.dumps(row), flush=True)
    growth = rows[1]["peak_rss_mib"] / rows[0]["peak_rss_mib"] - 1
    meta = {"backend": args.backend, "load_avg": os.getloadavg(), "growth": round(growth, 3)}
    Path(args.out + ".json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    lines = [f"`minilm-qdrant index --backend {args.backend}` into the embedded store, "
             f"peak RSS at 1x and {args.times}x the corpus (growth {growth:+.1%})", "",
             "| documents | x corpus | seconds | docs/s | peak RSS MiB |",
             "|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['docs']:,} | {r['times']} | {r['seconds']} | {r['docs_per_s']} | "
              f"{r['peak_rss_mib']} |" for r in rows]
    Path(args.out + ".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
