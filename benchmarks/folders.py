"""Folders of files beside a JSONL of the same texts: first index, rerun, sync, PDFs.

    PYTHONPATH=src python benchmarks/folders.py [--backend auto] [--pdfs 200]

SciFact (5,183 abstracts) written three ways: ``corpus.jsonl``, a folder of one ``.txt`` file
an abstract, and a folder of one ``.md`` file an abstract (``# title`` then the text). In one
process (weights loaded and warmed before timing), each into a fresh embedded store: the JSONL
through `Collection.upsert(read_documents(...))`, the folders through `sync`; then for the
``.txt`` folder a rerun (nothing changed), and a sync after 1% of the files are edited and 1%
deleted (the collection is then checked to hold exactly the folder's documents). As whole CLI
processes: ``index`` of the ``.txt`` folder, first and rerun, and a rerun of the JSONL. Last,
a folder of generated PDFs (three abstracts a PDF, one a page): text extraction in pages/s
against the embedding. Writes ``folders.md`` / ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = Path(os.environ.get("SCIFACT", HERE.parent.parent / "shared" / "data" / "scifact"))
CLI = [str(Path(sys.executable).with_name("minilm-qdrant"))]


def write_corpus(root: Path, limit: int | None) -> list[dict[str, str]]:
    rows = [json.loads(line) for line in (DATA / "corpus.jsonl").open(encoding="utf-8")]
    rows = rows[:limit]
    with (root / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps({"id": r["_id"], "title": r.get("title", ""),
                                "text": r["text"]}) + "\n")
    for kind in ("txt", "md"):
        (root / kind).mkdir()
    for r in rows:
        title = (r.get("title") or "").strip()
        (root / "txt" / f"{r['_id']}.txt").write_text(f"{title} {r['text']}".strip(),
                                                      encoding="utf-8")
        (root / "md" / f"{r['_id']}.md").write_text(f"# {title}\n\n{r['text']}",
                                                    encoding="utf-8")
    return rows


def write_pdfs(root: Path, rows: list[dict[str, str]], n: int) -> int:
    from fpdf import FPDF

    root.mkdir()
    pages = 0
    for i in range(n):
        doc = FPDF()
        doc.set_title(rows[3 * i].get("title", ""))
        for r in rows[3 * i:3 * i + 3]:
            doc.add_page()
            doc.set_font("helvetica", size=10)
            text = f"{r.get('title', '')}\n\n{r['text']}"
            doc.multi_cell(0, 5, text.encode("latin-1", "replace").decode("latin-1"))
            pages += 1
        doc.output(str(root / f"paper{i:04d}.pdf"))
    return pages


def cli(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([*CLI, *args], check=True, capture_output=True,
                   env={**os.environ, "HF_HUB_OFFLINE": "1"})
    return round(time.perf_counter() - start, 2)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--pdfs", type=int, default=200)
    parser.add_argument("--limit", type=int, default=None, help="first N abstracts (a smoke run)")
    args = parser.parse_args()
    from minilm_qdrant import Collection, Embedder
    from minilm_qdrant.inputs import FolderStats, read_documents, read_path, sync

    rows: dict[str, dict[str, float | int | str]] = {}
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        root = Path(tmp)
        corpus = write_corpus(root, args.limit)
        n = len(corpus)
        embedder = Embedder("all-MiniLM-L6-v2", backend=args.backend)
        embedder.embed_documents([r["text"] for r in corpus[:64]], warn=False)  # warm up

        def store(name: str) -> Collection:
            return Collection("scifact", embedder, path=str(root / "stores" / name))

        def timed(what: str, fn, docs: int = n) -> None:  # type: ignore[no-untyped-def]
            start = time.perf_counter()
            out = fn()
            seconds = round(time.perf_counter() - start, 2)
            rows[what] = {"seconds": seconds, "docs_per_s": round(docs / seconds, 1), **out}
            print(what, rows[what], flush=True)

        def from_sync(report) -> dict[str, int]:  # type: ignore[no-untyped-def]
            return {"added": report.added, "updated": report.updated,
                    "unchanged": report.unchanged, "deleted": report.deleted}

        with store("jsonl") as col:
            timed("JSONL, first index (in process)", lambda: {
                "written": col.upsert(read_documents(root / "corpus.jsonl")).written})
        with store("txt") as col:
            timed("txt folder, first index (in process)",
                  lambda: from_sync(sync(col, root / "txt")))
            timed("txt folder, rerun unchanged (in process)",
                  lambda: from_sync(sync(col, root / "txt")))
            names = sorted((root / "txt").iterdir())
            random.Random(7).shuffle(names)
            step = n // 100
            for f in names[:step]:
                f.write_text(f.read_text(encoding="utf-8") + " Edited.", encoding="utf-8")
            for f in names[step:2 * step]:
                f.unlink()
            timed("txt folder, --sync after 1% edited, 1% deleted (in process)",
                  lambda: from_sync(sync(col, root / "txt")))
            held = {d.id: d.text for d in col.find()}
            want = {d.id: d.text for d in read_path(root / "txt")}
            rows["txt folder, --sync after 1% edited, 1% deleted (in process)"]["exact"] = \
                str(held == want)
        with store("md") as col:
            timed("md folder, first index (in process)", lambda: from_sync(sync(col, root / "md")))
            timed("md folder, rerun unchanged (in process)",
                  lambda: from_sync(sync(col, root / "md")))
        common = ["--model", "all-MiniLM-L6-v2", "--backend", args.backend,
                  "--collection", "scifact"]
        p = str(root / "stores" / "cli-txt")
        for what, argv in (("txt folder, first index (CLI process)", ["index", str(root / "txt")]),
                           ("txt folder, rerun unchanged (CLI process)",
                            ["index", str(root / "txt")]),
                           ("JSONL, rerun unchanged (CLI process)",
                            ["index", str(root / "corpus.jsonl"), "--path",
                             str(root / "stores" / "jsonl")])):
            seconds = cli(*argv, *(["--path", p] if "--path" not in argv else []), *common)
            files = len(list((root / "txt").iterdir())) if "txt" in what else n
            rows[what] = {"seconds": seconds, "docs_per_s": round(files / seconds, 1)}
            print(what, rows[what], flush=True)
        pages = write_pdfs(root / "pdf", corpus, args.pdfs)
        stats = FolderStats()
        timed("PDF folder: text extraction only (read_path)", lambda: {
            "pages": pages, "documents": sum(1 for _ in read_path(root / "pdf", stats=stats))},
            args.pdfs)
        extract_s = float(rows["PDF folder: text extraction only (read_path)"]["seconds"])
        rows["PDF folder: text extraction only (read_path)"]["pages_per_s"] = round(
            pages / extract_s, 1)
        with store("pdf") as col:
            timed("PDF folder, first index (extraction + embedding)",
                  lambda: from_sync(sync(col, root / "pdf")), args.pdfs)
    first = float(rows["txt folder, first index (in process)"]["seconds"])
    pdf_s = float(rows["PDF folder, first index (extraction + embedding)"]["seconds"])
    first_cli = float(rows["txt folder, first index (CLI process)"]["seconds"])
    jsonl = float(rows["JSONL, first index (in process)"]["seconds"])
    cpu = platform.processor() or platform.machine()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [f"SciFact, {n:,} abstracts, `{args.backend}`, embedded store, one run; CPU: {cpu} "
             f"({os.cpu_count()} cores)", "",
             "| run | seconds | docs/s | share of the first run | what it did |",
             "|---|---:|---:|---:|---|"]
    for what, r in rows.items():
        base = first_cli if "CLI" in what else jsonl if what.startswith("JSONL") else first
        did = ", ".join(f"{k} {v}" for k, v in r.items() if k not in ("seconds", "docs_per_s"))
        share = f"{float(r['seconds']) / base:.1%}" if "PDF" not in what else ""
        lines.append(f"| {what} | {r['seconds']} | {r['docs_per_s']} | {share} | {did} |")
    txt_rate = float(rows["txt folder, first index (in process)"]["docs_per_s"])
    jsonl_rate = float(rows["JSONL, first index (in process)"]["docs_per_s"])
    md_rate = float(rows["md folder, first index (in process)"]["docs_per_s"])
    lines += ["", f"Folder against JSONL, first index docs/s: txt {txt_rate / jsonl_rate:.2f}x, "
              f"md {md_rate / jsonl_rate:.2f}x (target >= 0.90x). PDF text extraction: "
              f"{rows['PDF folder: text extraction only (read_path)']['pages_per_s']} pages/s, "
              f"{extract_s / pdf_s:.0%} of the PDF folder's index time."]
    (HERE / "folders.json").write_text(json.dumps(rows, indent=2))
    (HERE / "folders.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
