"""Documents/s of ``index`` against ``index --ray --workers N``, whole processes, alternating.

Each run is the real CLI in its own process, from start to exit (model load and, for Ray,
starting a local Ray and its workers included), into a fresh embedded store; the order of the
configurations rotates each round so that a change of the machine's load falls on all of
them. Then: top-10 of ``--queries`` SciFact claims in the plain store and in the Ray store of
the last round (same ids?), points and unique document ids of each store, and a crash test:
``index --ray`` SIGKILLed ``--kill-after`` seconds in, then the same command rerun.

Usage::

    PYTHONPATH=src python benchmarks/ray_ingest.py [--limit 2000] [--rounds 2] \\
        [--configs plain,ray1,ray2] [--kill-after 40] [--queries 20]

Writes ``benchmarks/ray-ingest.json`` and ``benchmarks/ray-ingest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", "/work/shared/data/scifact"))
MODEL = "all-MiniLM-L6-v2"
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
       "PYTHONPATH": f"{HERE.parent / 'src'}:{os.environ.get('PYTHONPATH', '')}"}
CLI = [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "index"]


def command(config: str, docs: Path, store: Path) -> list[str]:
    """``plain`` (``index``), ``plain1`` (``index`` with its model on one thread: a
    diagnostic), ``rayN`` (``index --ray --workers N``)."""
    cmd = [*CLI, str(docs), "--path", str(store), "--model", MODEL]
    if config.startswith("ray"):
        cmd += ["--ray", "--workers", config.removeprefix("ray")]
    return cmd


def env_of(config: str) -> dict[str, str]:
    return {**ENV, "OMP_NUM_THREADS": "1", "MINILM_QDRANT_THREADS": "1"} \
        if config == "plain1" else ENV


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(config: str, docs: Path, store: Path) -> dict[str, Any]:
    """One whole process: wall seconds, the CPU seconds of the processes it reaped, its own
    report of seconds, and the load around it."""
    load, cpu, start = os.getloadavg()[0], children_cpu(), time.monotonic()
    proc = subprocess.run(command(config, docs, store), env=env_of(config), capture_output=True,
                          text=True)
    wall, cpu = time.monotonic() - start, children_cpu() - cpu
    if proc.returncode:
        raise SystemExit(f"{config} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    said = re.search(r"Indexed (\d+) documents .* in ([\d.]+)s", proc.stdout)
    assert said, proc.stdout
    return {"config": config, "wall_s": wall, "cpu_s": cpu, "written": int(said[1]),
            "reported_s": float(said[2]), "load_before": load, "load_after": os.getloadavg()[0]}


def contents(store: Path) -> tuple[int, int]:
    """Points, and unique document ids, in a store."""
    from minilm_qdrant import Collection

    with Collection(path=str(store), create=False) as col:
        ids = [p.payload["doc_id"] for batch in col.engine.scroll(col.name, 512, False)
               for p in batch]
        return col.count(), len(set(ids))


def top10(store: Path, claims: list[str]) -> list[list[str | int]]:
    from minilm_qdrant import Collection, Embedder

    with Collection(path=str(store), create=False, embedder=Embedder(MODEL)) as col:
        return [[h.id for h in col.search(c, 10)] for c in claims]


def crash(docs: Path, store: Path, after: float) -> dict[str, Any]:
    """``index --ray --workers 2`` SIGKILLed ``after`` seconds in (the driver only, as a
    crash would), then rerun to the end."""
    proc = subprocess.Popen(command("ray2", docs, store), env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(after)  # a measurement, not a test: the "40 s in"
    assert proc.poll() is None, "finished before the kill"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(5)  # then: did the local Ray go with its driver?
    left = subprocess.run(["pgrep", "-f", f"ray.*{store.name}|raylet|gcs_server"],
                          capture_output=True, text=True).stdout.split()
    rerun = run("ray2", docs, store)
    proc2 = subprocess.run(command("ray2", docs, store), env=ENV, capture_output=True,
                           text=True)  # a third run: everything is stored, nothing embedded
    points, unique = contents(store)
    count = len(docs.read_text().splitlines())
    third = re.search(r"Indexed (\d+) documents", proc2.stdout)
    assert third, proc2.stdout + proc2.stderr
    return {"killed_after_s": after, "ray_processes_left": len(left), "rerun": rerun,
            "rerun_written": rerun["written"], "stored_before_kill": count - rerun["written"],
            "third_run_written": int(third[1]), "points": points, "unique_ids": unique}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--limit", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--configs", default="plain,ray1,ray2")
    parser.add_argument("--kill-after", default="40",
                        help="seconds into a Ray ingest to SIGKILL it, comma-separated; 0: none")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--out", default=str(HERE / "ray-ingest"))
    args = parser.parse_args()
    configs = args.configs.split(",")
    work = Path(tempfile.mkdtemp(prefix="ray-ingest-"))
    docs = work / "docs.jsonl"
    with (DATA / "corpus.jsonl").open() as f:
        docs.write_text("".join(line for _, line in zip(range(args.limit), f, strict=False)))
    claims = [json.loads(line)["text"] for line in (DATA / "queries.jsonl").open()][
        :args.queries]
    rows: list[dict[str, Any]] = []
    for r in range(args.rounds):
        order = configs[r % len(configs):] + configs[:r % len(configs)]
        for config in order:
            row = {"round": r, **run(config, docs, work / f"{config}-{r}")}
            row["docs_per_s"] = args.limit / row["wall_s"]
            rows.append(row)
            print(json.dumps(row), flush=True)
    last = args.rounds - 1
    quality: dict[str, Any] = {}
    base = top10(work / f"plain-{last}", claims) if "plain" in configs and rows else None
    for config in configs if rows else []:
        points, unique = contents(work / f"{config}-{last}")
        quality[config] = {"points": points, "unique_ids": unique}
        if base is not None and config != "plain":
            mine = top10(work / f"{config}-{last}", claims)
            quality[config]["same_top10"] = sum(a == b for a, b in zip(base, mine, strict=True))
    print(json.dumps(quality), flush=True)
    killed = [crash(docs, work / f"crash-{after:g}", after)
              for after in map(float, args.kill_after.split(",")) if after]
    print(json.dumps(killed), flush=True)
    meta = {"date": datetime.now(timezone.utc).isoformat(timespec="minutes"),
            "docs": args.limit, "rounds": args.rounds, "cpu_count": os.cpu_count(),
            "cpu": _cpu_name(), "queries": len(claims), "load_avg_end": os.getloadavg()}
    Path(args.out + ".json").write_text(json.dumps(
        {"meta": meta, "rows": rows, "quality": quality, "crash": killed}, indent=2))
    Path(args.out + ".md").write_text(table(meta, rows, quality, killed))
    print(table(meta, rows, quality, killed))


def _cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown"


def table(meta: dict[str, Any], rows: list[dict[str, Any]], quality: dict[str, Any],
          killed: list[dict[str, Any]]) -> str:
    configs = list(dict.fromkeys(r["config"] for r in rows))
    mean = {c: sum(r["docs_per_s"] for r in rows if r["config"] == c)
            / sum(r["config"] == c for r in rows) for c in configs}
    cpu = {c: sum(r["cpu_s"] for r in rows if r["config"] == c)
           / sum(r["written"] for r in rows if r["config"] == c) for c in configs}
    lines = [
        f"{meta['docs']} SciFact abstracts, {meta['rounds']} rounds alternating, "
        f"{meta['cpu_count']} cores ({meta['cpu']}), {meta['date']}; whole processes "
        "(start to exit) into a fresh embedded store.",
        "",
        "| round | config | wall s | docs/s | CPU s reaped (Ray: the driver's only) | "
        "load before / after |",
        "|---:|---|---:|---:|---:|---|",
    ]
    for r in rows:
        lines.append(f"| {r['round']} | {r['config']} | {r['wall_s']:.0f} | "
                     f"{r['docs_per_s']:.2f} | {r['cpu_s']:.0f} | "
                     f"{r['load_before']:.1f} / {r['load_after']:.1f} |")
    lines += ["", "| config | mean docs/s | x plain | CPU core-ms a document (reaped) | points | "
              "unique ids | same top-10 as plain |", "|---|---:|---:|---:|---:|---:|---:|"]
    for c in configs:
        q = quality.get(c, {})
        ratio = f"{mean[c] / mean['plain']:.2f}" if "plain" in mean else "-"
        same = f"{q['same_top10']} / {meta['queries']}" if "same_top10" in q else "-"
        lines.append(f"| {c} | {mean[c]:.2f} | {ratio} | {1000 * cpu[c]:.0f} | "
                     f"{q.get('points', '-')} | {q.get('unique_ids', '-')} | {same} |")
    if killed:
        lines += ["", "Crash: `index --ray --workers 2` SIGKILLed (the driver), then the same "
                  "command rerun, then once more:", "",
                  "| killed after s | stored before the kill | Ray processes left 5 s later | "
                  "rerun wrote | third run wrote | points | unique ids |",
                  "|---:|---:|---:|---:|---:|---:|---:|"]
        for k in killed:
            lines.append(f"| {k['killed_after_s']:g} | {k['stored_before_kill']} | "
                         f"{k['ray_processes_left']} | {k['rerun_written']} | "
                         f"{k['third_run_written']} | {k['points']} | {k['unique_ids']} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
