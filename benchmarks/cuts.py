"""Ways to cut texts into windows, side by side: quality on every shared set and the word
pieces each embeds.

    PYTHONPATH=src python benchmarks/cuts.py --cache /tmp/cuts \\
        --sets scifact:train nfcorpus:dev scifact-long:train /tmp/irled2017-sub50:dev \\
        --cuts before:whole=254 one-pass overlap32:overlap=32 [--backend auto]

A cut is ``NAME[:FIELD=VALUE,...]`` of `WindowSettings` fields (``size``, ``overlap``,
``whole``, ``last``, ``coverage``; unnamed fields keep today's defaults; ``before`` above is the
cut of every collection made before ``whole`` existed: windows of 254, 64 shared, a text over
254 word pieces cut). Each set is indexed once per cut through `Collection` (Edge, BM25) and
every judged query searched in the modes of ``--modes`` through `eval`, as
``benchmarks/windows.py quality`` does; NDCG@10, Recall@100 and, on SciFact-long, passage@10.

Embedding is the cost of a run, so vectors are cached per set, backend and text embedded
(``--cache``/<set>/vectors-<backend>.npz): a cut embeds only the windows no cut before it
embedded (a window cut the same way is the same text, embedded the same way). The word pieces
a cut embeds are counted from its windows, not from what was embedded this run. Writes
``cuts.json`` beside this file (a set's and cut's fresh rows replace earlier ones).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from benchmarks.windows import MODEL, SHARED, cpu, disk_bytes  # noqa: E402

MODES = {"dense": ("dense", "dbsf"), "sparse": ("sparse", "dbsf"), "rrf": ("hybrid", "rrf"),
         "hybrid": ("hybrid", "dbsf")}


def parse_cut(text: str) -> tuple[str, dict[str, Any]]:
    """``NAME[:FIELD=VALUE,...]`` -> (name, `WindowSettings` keyword arguments)."""
    name, _, fields = text.partition(":")
    kwargs: dict[str, Any] = {}
    for item in filter(None, fields.split(",")):
        key, _, value = item.partition("=")
        kwargs[key] = value if key == "coverage" else int(value)
    return name, kwargs


def cached_embedder(backend: str, file: Path) -> Any:
    """An `Embedder` that remembers every vector it made (by prompt, limit and text) in
    ``file``, and embeds only what it has not seen."""
    from minilm_qdrant import Embedder
    from minilm_qdrant.backends import Encoded

    class Cached(Embedder):
        def __init__(self) -> None:
            super().__init__(MODEL, backend=backend)
            self.memory: dict[str, np.ndarray] = {}
            self.fresh = 0
            if file.exists():
                with np.load(file, allow_pickle=False) as data:
                    self.memory = dict(zip(data["keys"].tolist(), data["rows"], strict=True))

        def _embed(self, texts: Sequence[str], prompt: str, warn: bool, kind: str = "batch",
                   limit: int | None = None) -> Encoded:
            keys = [hashlib.sha1(f"{prompt}\x00{limit}\x00{t}".encode(
                "utf-8", "surrogatepass")).hexdigest() for t in texts]
            todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in self.memory}
            if todo:
                made = super()._embed(list(todo.values()), prompt, warn, "batch", limit)
                self.memory.update(zip(todo, made.vectors, strict=True))
                self.fresh += len(todo)
            return Encoded(np.stack([self.memory[k] for k in keys]), 0, 0, 0)

        def save(self) -> None:
            if self.fresh:
                keys = list(self.memory)
                np.savez(file, keys=np.array(keys), rows=np.stack([self.memory[k] for k in keys]))
                self.fresh = 0

    return Cached()


def word_pieces(embedder: Any, cutter: Any, texts: list[str]) -> tuple[int, int, int]:
    """(word pieces embedded with [CLS]/[SEP], windows, texts of more than one window)."""
    tokenizer = embedder.tokenizer()
    pieces = windows = windowed = 0
    for at in range(0, len(texts), 256):
        chunk = texts[at:at + 256]
        for text, spans in zip(chunk, cutter.cut(chunk), strict=True):
            parts = [text[a:b] for a, b in spans]
            pieces += sum(len(e.ids) + 2 for e in tokenizer.encode_batch(
                parts, add_special_tokens=False))
            windows += len(spans)
            windowed += len(spans) > 1
    return pieces, windows, windowed


def run(sets: list[str], cuts: list[str], cache: Path, backend: str, modes: list[str]
        ) -> list[dict[str, Any]]:
    from minilm_qdrant import Collection, CollectionOptions
    from minilm_qdrant.evaluation import evaluate, load_beir
    from minilm_qdrant.windows import Windows, WindowSettings

    rows = []
    for item in sets:
        root, split = item.rsplit(":", 1)
        name = Path(root).name
        data = load_beir(SHARED / root, split)
        texts = [d.text for d in data.documents()]
        (cache / name).mkdir(parents=True, exist_ok=True)
        embedder = cached_embedder(backend, cache / name / f"vectors-{backend}.npz")
        for cut in cuts:
            label, kwargs = parse_cut(cut)
            settings = WindowSettings(**kwargs)
            cutter = Windows.of(embedder, settings)
            pieces, windows, windowed = word_pieces(embedder, cutter, texts)
            where = cache / name / label
            began = time.perf_counter()
            with Collection(f"beir-{name}", embedder, path=str(where),
                            options=CollectionOptions(windows=settings)) as col:
                for mode in modes:
                    how, fusion = MODES[mode]
                    result = evaluate(col, data, mode=how, fusion=fusion)  # type: ignore[arg-type]
                    embedder.save()
                    row = {"set": name, "split": split, "cut": label,
                           "settings": cutter.settings.as_dict(), **result.as_dict(),
                           "word_pieces": pieces, "windows": windows, "windowed": windowed,
                           "docs": len(texts), "backend": backend,
                           "disk_mb": round(disk_bytes(where) / 2**20, 1),
                           "seconds": round(time.perf_counter() - began, 1)}
                    for drop in ("tokens", "index_seconds", "reused_index", "truncated"):
                        row.pop(drop, None)
                    rows.append(row)
                    print(json.dumps(row), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="+", default=[
        "scifact:train", "nfcorpus:dev", "scifact-long:train"])
    parser.add_argument("--cuts", nargs="+", default=["before:whole=254", "default"])
    parser.add_argument("--modes", nargs="+", default=["dense", "hybrid"],
                        choices=sorted(MODES))
    parser.add_argument("--cache", type=Path, default=HERE / ".cache" / "cuts")
    parser.add_argument("--backend", default="auto")
    args = parser.parse_args()
    began = time.time()
    rows = run(args.sets, args.cuts, args.cache, args.backend, args.modes)
    meta = {**cpu(), "date": time.strftime("%Y-%m-%d"), "argv": sys.argv[1:],
            "seconds": round(time.time() - began)}
    target = HERE / "cuts.json"
    if target.exists():
        earlier = json.loads(target.read_text())
        key = ("set", "split", "cut", "mode", "backend")
        fresh = {tuple(r[k] for k in key) for r in rows}
        rows = [r for r in earlier["rows"] if tuple(r[k] for k in key) not in fresh] + rows
        meta = {"runs": [*earlier["meta"].get("runs", [earlier["meta"]]), meta]}
    target.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
