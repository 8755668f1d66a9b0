"""The figures of docs/performance.md, drawn from the measurements in benchmarks/*.json.

Each figure names, in its own caption, the machine (CPU and class) and the date of the run it
shows: CPU figures from different machines are never drawn on one axis. Where a JSON file
records its machine (``meta``), that is used; for the early files that do not, the machine and
date are the ones benchmarks/README.md gives for that run (``PROVENANCE`` below).

Two ways to run it:

- ``python benchmarks/plots.py --out DIR``: write every figure as ``DIR/NAME.svg``;
- as an MkDocs hook (``hooks:`` in mkdocs.yml): ``mkdocs build`` draws the figures and adds them
  to the site as ``plots/NAME.svg`` without writing into the checkout.
"""

from __future__ import annotations

import argparse
import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent

XEON = "Intel Xeon, AVX-512 VNNI/BF16 + AMX, 2 cores"
EPYC_AVX2 = "AMD EPYC, AVX2 only, 2 cores"
EPYC_BF16 = "AMD EPYC, AVX-512 BF16, 2 cores"
PROVENANCE: dict[str, tuple[str, str]] = {
    # file: (machine, date), from benchmarks/README.md (these files have no "meta" machine)
    "ingest.json": (EPYC_AVX2, "2026-11-23"),
    "query.json": (EPYC_AVX2, "2026-11-23"),
    "frameworks.json": (XEON, "2026-11-25"),
    "hybrid.json": (XEON, "2026-11-25"),
    "resume.json": (XEON, "2026-11-25"),
    # tenants.md names the machine, not the day; the date is the commit of tenants.json
    "tenants.json": (EPYC_BF16, "2026-12-04"),
}
OURS, THEIRS = "#3f51b5", "#9e9e9e"


@dataclass(frozen=True)
class Figure:
    name: str
    source: str
    """The benchmarks/ JSON file it is drawn from."""
    title: str
    draw: Callable[[Any, Any], None]
    """draw(axes, data)."""

    def data(self) -> Any:
        return json.loads((HERE / self.source).read_text(encoding="utf-8"))

    def caption(self) -> str:
        """Machine (CPU class) and date of the run, and the file: one line."""
        machine, date = provenance(self.source, self.data())
        return f"{machine}; {date}; benchmarks/{self.source}"


def provenance(source: str, data: Any) -> tuple[str, str]:
    """(machine, date) of a benchmark file: its own ``meta`` where it records them."""
    meta = data.get("meta") if isinstance(data, dict) else None
    if isinstance(meta, dict) and "date" in meta and "cpu" in meta:
        cpu = "Intel Xeon" if "Xeon" in meta["cpu"] else meta["cpu"]
        klass = meta.get("class", "")
        return f"{cpu}, {klass}, {meta.get('cores', '?')} cores", meta["date"]
    if isinstance(meta, dict) and "runs" in meta:  # several runs: every machine and day
        runs = meta["runs"]
        machines = sorted({f"{'Intel Xeon' if 'Xeon' in r['cpu'] else r['cpu']} "
                           f"({r['class']})" for r in runs})
        dates = sorted({r["date"] for r in runs})
        return (f"{' / '.join(machines)}, {runs[0]['cores']} cores",
                f"{dates[0]} to {dates[-1]}" if len(dates) > 1 else dates[0])
    return PROVENANCE[source]


def _label_bars(ax: Any, bars: Any, fmt: str = "{:.1f}") -> None:
    for bar in bars:
        width = bar.get_width()
        ax.annotate(fmt.format(width), (width, bar.get_y() + bar.get_height() / 2),
                    xytext=(3, 0), textcoords="offset points", va="center", fontsize=8)


def _ingest(ax: Any, data: Any) -> None:
    rows = data["rows"]
    names = {"langchain": "LangChain: HuggingFaceEmbeddings + langchain-qdrant",
             "llamaindex": "LlamaIndex: HuggingFaceEmbedding + QdrantVectorStore",
             "st-upload": "sentence-transformers + qdrant-client upload_points",
             "torch": "minilm-qdrant, torch", "onnx": "minilm-qdrant, onnx (= auto here)",
             "onnx-int8": "minilm-qdrant, onnx-int8",
             "lc-minilm-torch": "LangChain: MiniLMVectorStore, torch",
             "lc-minilm-auto": "LangChain: MiniLMVectorStore, auto (torch-bf16 here)",
             "lc-minilm-onnx-int8": "LangChain: MiniLMVectorStore, onnx-int8",
             "li-minilm-auto": "LlamaIndex: MiniLMVectorStore, auto",
             "li-minilm-onnx-int8": "LlamaIndex: MiniLMVectorStore, onnx-int8"}
    if any(r["stack"].startswith("lc-") for r in rows):
        names["langchain"] = "LangChain: QdrantVectorStore + HuggingFaceEmbeddings"
        names["llamaindex"] = "LlamaIndex: its QdrantVectorStore + HuggingFaceEmbedding"
    labels = [f"{names.get(r['stack'], r['stack'])} (NDCG@10 {r['ndcg10']:.2f})" for r in rows]
    colours = [OURS if "minilm" in r["stack"] or r["stack"] in ("torch", "onnx", "onnx-int8")
               else THEIRS for r in rows]
    bars = ax.barh(labels, [r["docs_per_s"] for r in rows], color=colours)
    _label_bars(ax, bars)
    ax.invert_yaxis()
    ax.set_xlabel(f"docs/s, {data['meta']['docs']:,} SciFact abstracts (higher is better)")


def _query(ax: Any, data: Any) -> None:
    rows = data["rows"]
    stacks = list(dict.fromkeys(r["stack"] for r in rows))
    sizes = sorted({r["n"] for r in rows})
    names = {"langchain": "LangChain similarity_search (local mode)",
             "auto": "minilm-qdrant, auto (= onnx here), Edge",
             "onnx-int8": "minilm-qdrant, onnx-int8, Edge", "torch": "minilm-qdrant, torch, Edge"}
    height = 0.8 / len(sizes)
    for i, n in enumerate(sizes):
        by = {r["stack"]: r for r in rows if r["n"] == n}
        ys = [s + i * height for s in range(len(stacks))]
        bars = ax.barh(ys, [by[s]["total_p50_ms"] for s in stacks], height=height,
                       color=("#9fa8da", OURS)[i % 2], label=f"{n:,} points")
        _label_bars(ax, bars, "{:.1f} ms")
    ax.set_yticks([s + height * (len(sizes) - 1) / 2 for s in range(len(stacks))],
                  [names.get(s, s) for s in stacks])
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("p50 ms, log scale (lower is better)")
    ax.legend(loc="lower right", fontsize=8)


def _hybrid(ax: Any, data: Any) -> None:
    rows = data["quality"]
    names = {"dense": "dense", "sparse": "sparse (BM25)", "hybrid-rrf": "hybrid RRF",
             "hybrid-dbsf": "hybrid DBSF (default)"}
    labels = [names.get(r["mode"], r["mode"]) for r in rows]
    bars = ax.barh(labels, [r["ndcg@10"] for r in rows],
                   color=[OURS if r["mode"] == "hybrid-dbsf" else THEIRS for r in rows])
    _label_bars(ax, bars, "{:.4f}")
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("NDCG@10, 809 train claims, all-MiniLM-L6-v2 (higher is better)")


WINDOW_SETS = (("scifact-long", "SciFact-long"), ("scifact", "SciFact"),
               ("nfcorpus", "NFCorpus"), ("irled2017", "IRLeD 2017 (int8)"))


def _windows(ax: Any, data: Any) -> None:
    latest: dict[tuple[str, str, str], float] = {}
    for row in data["rows"]:  # the last run of each set, layout and mode
        latest[(row["set"], row["layout"], row["mode"])] = row["ndcg@10"]
    sets = [(key, label) for key, label in WINDOW_SETS if (key, "windows", "dense") in latest]
    series = [("truncated", "dense", "truncated (before), dense", "#bdbdbd"),
              ("windows", "dense", "windows, dense", "#9fa8da"),
              ("truncated", "hybrid-dbsf", "truncated (before), hybrid DBSF", "#757575"),
              ("windows", "hybrid-dbsf", "windows, hybrid DBSF (default)", OURS)]
    height = 0.8 / len(series)
    for i, (layout, mode, label, colour) in enumerate(series):
        ys = [s + i * height for s in range(len(sets))]
        bars = ax.barh(ys, [latest[(key, layout, mode)] for key, _ in sets], height=height,
                       color=colour, label=label)
        _label_bars(ax, bars, "{:.3f}")
    ax.set_yticks([s + height * (len(series) - 1) / 2 for s in range(len(sets))],
                  [label for _, label in sets])
    ax.invert_yaxis()
    ax.set_xlim(0, 0.95)
    ax.set_xlabel("NDCG@10 (higher is better); the latest run of each set")
    ax.legend(loc="lower right", fontsize=8)


def _tenants(ax: Any, data: Any) -> None:
    rows = [r for r in data if r["tenants"]]
    labels = [r["layout"].replace(" (m=0, payload_m=16; default)", " (default)") for r in rows]
    height = 0.4
    ys = list(range(len(rows)))
    a = ax.barh(ys, [r["tenant_p50_ms"] for r in rows], height=height,
                color=OURS, label="a tenant's search in the shared collection")
    b = ax.barh([y + height for y in ys], [r["alone_p50_ms"] for r in rows], height=height,
                color=THEIRS, label="the same tenant alone in a collection")
    _label_bars(ax, a, "{:.2f}")
    _label_bars(ax, b, "{:.2f}")
    ax.set_yticks([y + height / 2 for y in ys], labels)
    ax.invert_yaxis()
    ax.set_xlabel("hybrid k=10, p50 ms, 100,000 real vectors (lower is better)")
    ax.legend(loc="lower right", fontsize=8)


def _long_query(ax: Any, data: Any) -> None:
    rows = data["backends"]["rows"]
    for backend, label, colour in (("auto", "queries on ONNX fp32 (auto, the default)", OURS),
                                   ("onnx-int8", "queries on onnx-int8 (opt-in)", THEIRS)):
        mine = [r for r in rows if r["backend"] == backend]
        ax.plot([r["round"] for r in mine], [r["p50_ms"] for r in mine], marker="o",
                color=colour, label=label)
    ax.set_xticks(sorted({r["round"] for r in rows}))
    ax.set_ylim(0, None)
    ax.set_xlabel("round (a new process opening the same store each time)")
    ax.set_ylabel("search p50 ms")
    ax.legend(loc="lower left", fontsize=8)


def _resume(ax: Any, data: Any) -> None:
    labels = list(data)
    bars = ax.barh(labels, [data[k]["seconds"] for k in labels], color=OURS)
    _label_bars(ax, bars, "{:.2f} s")
    ax.invert_yaxis()
    ax.set_xlabel("seconds, SciFact (5,183 abstracts), auto, embedded store")


FIGURES = (
    Figure("ingest", "ingest.json", "Raw text to searchable points, every stack side by side",
           _ingest),
    Figure("frameworks", "frameworks.json",
           "The framework quick starts: our stores against the frameworks' Qdrant stores",
           _ingest),
    Figure("query", "query.json", "One query embedded and searched", _query),
    Figure("hybrid", "hybrid.json", "Search modes on SciFact", _hybrid),
    Figure("windows", "windows-quality.json",
           "Long documents: every window embedded against the first window only", _windows),
    Figure("long-query", "windows-passages.json",
           "One query at 100,000 long documents (hybrid, every hit's passage)", _long_query),
    Figure("tenants", "tenants.json", "A tenant's search against the tenant alone", _tenants),
    Figure("resume", "resume.json", "Rerunning an ingest", _resume),
)


def render(figure: Figure, fmt: str = "svg") -> bytes:
    """The figure as SVG (or ``fmt``): its title above, its caption (machine, date, file)
    below."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams["svg.hashsalt"] = "minilm-qdrant"  # the same bytes for the same data
    plt.rcParams["svg.fonttype"] = "none"
    fig, ax = plt.subplots(figsize=(10, 4.4))
    try:
        figure.draw(ax, figure.data())
        fig.suptitle(figure.title, x=0.01, ha="left", fontsize=11)
        ax.spines[["top", "right"]].set_visible(False)
        fig.text(0.01, 0.01, figure.caption(), fontsize=8, color="#555555")
        fig.tight_layout(rect=(0, 0.04, 1, 1))
        out = io.BytesIO()
        fig.savefig(out, format=fmt, metadata={"Date": None} if fmt == "svg" else None,
                    dpi=80)
        return out.getvalue()
    finally:
        plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for NAME.svg files.")
    parser.add_argument("--format", default="svg", help="svg (default) or png.")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    for figure in FIGURES:
        path = args.out / f"{figure.name}.{args.format}"
        path.write_bytes(render(figure, args.format))
        print(f"{path}: {figure.caption()}")


def on_files(files: Any, config: Any) -> Any:
    """MkDocs hook: add every figure to the site as plots/NAME.svg (drawn in the build)."""
    from mkdocs.structure.files import File

    for figure in FIGURES:
        files.append(File.generated(config, f"plots/{figure.name}.svg",
                                    content=render(figure)))
    return files


if __name__ == "__main__":
    main()
