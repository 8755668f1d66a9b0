"""Labelled queries for tuning: read them (BEIR or JSONL pairs), split off a held-out part by
query, and mine BM25 hard negatives through a collection's sparse vectors (in Qdrant).

Everything becomes one shape, a BEIR directory, so that `eval`'s loader and scoring serve
tuning's held-out gate unchanged.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from minilm_qdrant import evaluation as beir
from minilm_qdrant.collection import Collection
from minilm_qdrant.errors import InputError


@dataclass
class Labelled:
    """Training and held-out queries over one corpus, with any negatives given by the user."""

    train: beir.BeirDataset
    dev: beir.BeirDataset
    negatives: dict[str, list[str]] = field(default_factory=dict)
    """Query id -> document ids given as negatives (JSONL ``negative``); mined when absent."""
    fingerprint: str = ""
    """A hash of the corpus, queries and judgements (recorded in the model card)."""


def load_labelled(
    data: str | Path, *, split: str = "train", dev_fraction: float = 0.2,
    dev_split: str | None = None, seed: int = 42, workdir: Path,
) -> Labelled:
    """A BEIR directory (``split``'s qrels) or a JSONL of ``{"query", "positive"[,
    "negative"]}`` pairs (written as a BEIR directory under ``workdir``), split into training
    and held-out queries: ``dev_split``'s qrels, else ``dev_fraction`` of the queries drawn with
    ``seed``. A query is never in both."""
    data = Path(data)
    negatives: dict[str, list[str]] = {}
    if data.is_file():
        data, negatives = _pairs_to_beir(data, workdir)
    elif not data.is_dir():
        raise InputError(f"{data}: no such file or directory (give a BEIR directory or a JSONL "
                         "of query/positive pairs)")
    labelled = beir.load_beir(data, split)
    if dev_split is not None:
        dev = beir.load_beir(data, dev_split)
        dev_ids = set(dev.queries)
    else:
        if not 0.0 < dev_fraction < 1.0:
            raise InputError(f"--dev-fraction must be between 0 and 1, got {dev_fraction}")
        ids = sorted(labelled.queries)
        random.Random(seed).shuffle(ids)
        dev_ids = set(ids[: max(1, round(len(ids) * dev_fraction))])
        dev = _subset(labelled, dev_ids)
    train = _subset(labelled, set(labelled.queries) - dev_ids)
    if not train.queries:
        raise InputError(f"{data}: no labelled query is left for training after the held-out "
                         "part; give more queries or a smaller --dev-fraction")
    return Labelled(train, dev, negatives, _fingerprint(labelled, dev))


def _subset(data: beir.BeirDataset, ids: set[str]) -> beir.BeirDataset:
    return replace(data, queries={q: t for q, t in data.queries.items() if q in ids},
                   qrels={q: r for q, r in data.qrels.items() if q in ids})


def _fingerprint(data: beir.BeirDataset, dev: beir.BeirDataset) -> str:
    digest = hashlib.sha256()
    with open(data.corpus_path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 22), b""):
            digest.update(chunk)
    digest.update(json.dumps([data.queries, data.qrels, sorted(dev.queries)],
                             sort_keys=True).encode())
    return digest.hexdigest()[:16]


def _pairs_to_beir(path: Path, workdir: Path) -> tuple[Path, dict[str, list[str]]]:
    """JSONL pairs -> a BEIR directory whose corpus is every positive and negative text."""
    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    qrels: list[tuple[str, str]] = []
    negatives: dict[str, list[str]] = {}

    def doc_id(text: object, where: str) -> str:
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"{where}: expected a non-empty string")
        key = "d" + hashlib.sha256(text.encode()).hexdigest()[:16]
        corpus[key] = text
        return key

    with open(path, encoding="utf-8-sig") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise InputError(f"{where}: not JSON ({exc})") from None
            if not isinstance(row, dict) or "query" not in row or "positive" not in row:
                raise InputError(f"{where}: expected an object with 'query' and 'positive' "
                                 "(and optionally 'negative')")
            qid = "q" + hashlib.sha256(str(row["query"]).encode()).hexdigest()[:16]
            if not isinstance(row["query"], str) or not row["query"].strip():
                raise InputError(f"{where}: field 'query': expected a non-empty string")
            queries[qid] = row["query"]
            for pos in _many(row["positive"]):
                qrels.append((qid, doc_id(pos, f"{where}: field 'positive'")))
            for neg in _many(row.get("negative")):
                negatives.setdefault(qid, []).append(doc_id(neg, f"{where}: field 'negative'"))
    if not queries:
        raise InputError(f"{path}: no query/positive pairs in it")
    root = workdir / "pairs"
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    _write_jsonl(root / "corpus.jsonl", [{"_id": k, "text": t} for k, t in corpus.items()])
    _write_jsonl(root / "queries.jsonl", [{"_id": k, "text": t} for k, t in queries.items()])
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, d in dict.fromkeys(qrels)]
    (root / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root, negatives


def _many(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _write_jsonl(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        fh.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def training_rows(
    collection: Collection, labelled: Labelled, hard_negatives: bool = True,
    on_progress: Callable[[int], None] | None = None,
) -> list[dict[str, str]]:
    """One row per (query, relevant document): ``anchor``, ``positive`` and (with
    ``hard_negatives``) ``negative``, a hard negative: a given one, else a top BM25 hit of the query
    (searched in Qdrant through the collection's sparse vectors) that is not judged for it.
    Texts are read back from the collection, so they are exactly the texts embedded."""
    train = labelled.train
    mined: dict[str, list[str]] = dict(labelled.negatives)
    unmined = {q: t for q, t in train.queries.items() if q not in mined}
    if hard_negatives and unmined:
        if collection.sparse is None:
            raise InputError(f"collection {collection.name!r} has no BM25 sparse vectors to mine "
                             "hard negatives with: add them (minilm-qdrant add-sparse) or give "
                             "'negative' in the pairs")
        depth = max(len(r) for r in train.qrels.values()) + 20
        run, _ = beir.run_queries(collection, unmined, depth, on_progress, mode="sparse")
        for qid, hits in run.items():
            judged = train.qrels[qid]
            mined[qid] = [d for d in sorted(hits, key=lambda d: -hits[d]) if d not in judged]
    wanted = {d for r in train.qrels.values() for d in r} | {d for n in mined.values() for d in n}
    texts = {str(doc.id): doc.text for doc in collection.get(sorted(wanted))}
    rows: list[dict[str, str]] = []
    for qid, query in sorted(train.queries.items()):
        judged = train.qrels[qid]
        positives = sorted(d for d, score in judged.items() if score > 0)
        negatives = [d for d in mined.get(qid, []) if d in texts and d not in judged]
        if hard_negatives and not negatives:  # BM25 found nothing unjudged: any unjudged text
            negatives = [d for d in sorted(texts) if d not in judged][:1]
            if not negatives:
                raise InputError(f"no document outside query {qid!r}'s judgements to use as a "
                                 "negative: the corpus is too small (or use no negatives)")
        for i, pos in enumerate(positives):
            if pos not in texts:
                raise InputError(f"document {pos!r} judged for query {qid!r} is not in "
                                 f"collection {collection.name!r}")
            row = {"anchor": query, "positive": texts[pos]}
            if hard_negatives:
                row["negative"] = texts[negatives[i % len(negatives)]]
            rows.append(row)
    return rows
