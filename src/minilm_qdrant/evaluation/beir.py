"""BEIR-format data sets, read: ``corpus.jsonl`` (``_id``, ``title``, ``text``),
``queries.jsonl`` (``_id``, ``text``), ``qrels/<split>.tsv`` (``query-id``, ``corpus-id``,
``score``) and, where a set ships them, ``qrels/<split>.passages.jsonl`` (where each answer sits
in its document). The corpus streams from disk; `metrics` scores runs over them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from minilm_qdrant.documents import Document
from minilm_qdrant.errors import InputError
from minilm_qdrant.inputs import ReadStats, read_documents

Qrels = dict[str, dict[str, int]]
Run = dict[str, dict[str, float]]
DEPTH = 100
"""Hits retrieved per query: enough for Recall@100 and MAP@100."""
QUERY_CHUNK = 256


@dataclass
class BeirDataset:
    """A loaded BEIR split: judged queries and their qrels; the corpus streams from disk."""

    root: Path
    split: str
    corpus_path: Path
    doc_ids: set[str]
    queries: dict[str, str]
    """Judged queries only (those with at least one relevant document), id -> text."""
    qrels: Qrels
    duplicate_docs: int = 0
    unknown_query_qrels: int = 0
    """Qrels lines naming a query that queries.jsonl lacks (dropped)."""
    unknown_doc_qrels: int = 0
    """Qrels lines naming a document that corpus.jsonl lacks (dropped)."""
    unjudged_queries: int = 0
    """Queries whose qrels name no relevant document (not evaluated)."""
    empty_docs: int = 0
    """Corpus documents without text: not indexed; a qrels line naming one stays judged (no
    system can find it), as the set publishes it."""

    def documents(self) -> Iterator[Document]:
        """The corpus as `Document`s (``title text``, id ``_id``), streamed in file order."""
        for doc, _ in _read_with_ids(self.corpus_path, skip_empty=True):
            yield doc

    @property
    def problems(self) -> dict[str, int]:
        """Non-fatal data problems, by description (only those that occurred)."""
        found = {
            "qrels lines naming unknown queries (dropped)": self.unknown_query_qrels,
            "qrels lines naming unknown documents (dropped)": self.unknown_doc_qrels,
            "queries without a relevant document (not evaluated)": self.unjudged_queries,
            "duplicate corpus ids (last kept)": self.duplicate_docs,
            "corpus documents without text (not indexed; judged as unfindable)":
                self.empty_docs,
        }
        return {label: n for label, n in found.items() if n}


def load_beir(root: str | Path, split: str = "test") -> BeirDataset:
    """Read and check a BEIR directory; a malformed line raises `InputError` naming it."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"{root}: no such directory (expected a BEIR data set)")
    corpus_path, queries_path = root / "corpus.jsonl", root / "queries.jsonl"
    qrels_path = root / "qrels" / f"{split}.tsv"
    for needed in (corpus_path, queries_path):
        if not needed.is_file():
            raise InputError(f"{needed}: no such file (a BEIR data set has corpus.jsonl, "
                             "queries.jsonl and qrels/<split>.tsv)")
    if not qrels_path.is_file():
        splits = sorted(p.stem for p in (root / "qrels").glob("*.tsv"))
        raise InputError(f"{qrels_path}: no such file; splits here: {splits or 'none'} "
                         "(choose one with --split)")
    doc_ids: set[str] = set()
    duplicates = 0
    stats = ReadStats()
    for _, doc_id in _read_with_ids(corpus_path, skip_empty=True, stats=stats):
        duplicates += doc_id in doc_ids
        doc_ids.add(doc_id)
    if not doc_ids:
        raise InputError(f"{corpus_path}: the corpus is empty")
    empty = {str(i) for i in stats.empty} - doc_ids
    all_queries = {qid: doc.text for doc, qid in _read_with_ids(queries_path)}
    data = BeirDataset(root, split, corpus_path, doc_ids, {}, {}, duplicate_docs=duplicates,
                       empty_docs=len(empty))
    for qid, did, score in _read_qrels(qrels_path):
        if qid not in all_queries:
            data.unknown_query_qrels += 1
        elif did not in doc_ids and did not in empty:
            data.unknown_doc_qrels += 1
        else:
            data.qrels.setdefault(qid, {})[did] = score
    judged = {qid for qid, docs in data.qrels.items() if any(s > 0 for s in docs.values())}
    data.unjudged_queries = len(data.qrels) - len(judged)
    data.qrels = {qid: docs for qid, docs in data.qrels.items() if qid in judged}
    data.queries = {qid: all_queries[qid] for qid in all_queries if qid in judged}
    if not data.queries:
        raise InputError(f"{qrels_path}: no query of queries.jsonl has a relevant document")
    return data


def _read_with_ids(path: Path, skip_empty: bool = False, stats: ReadStats | None = None
                   ) -> Iterator[tuple[Document, str]]:
    stats = stats if stats is not None else ReadStats()
    for doc in read_documents(path, stats=stats, skip_empty=skip_empty):
        if doc.id is None:
            raise InputError(f"{path}:{stats.lines}: missing '_id' field")
        yield doc, str(doc.id)


def _read_qrels(path: Path) -> Iterator[tuple[str, str, int]]:
    with open(path, encoding="utf-8-sig") as f:
        for lineno, line in enumerate(f, start=1):
            fields = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if len(fields) != 3:
                raise InputError(f"{path}:{lineno}: expected 3 tab-separated fields "
                                 f"(query-id, corpus-id, score), got {len(fields)}")
            qid, did, score = (s.strip() for s in fields)
            try:
                yield qid, did, int(score)
            except ValueError:
                if lineno == 1:  # the header line
                    continue
                raise InputError(f"{path}:{lineno}: score {score!r} is not an integer") from None


Spans = dict[tuple[str, str], tuple[int, int]]


def load_spans(data: BeirDataset) -> Spans:
    """Where the answer sits in each judged document (``qrels/<split>.passages.jsonl``:
    query-id, corpus-id, start, end), when the data set ships them."""
    path = data.root / "qrels" / f"{data.split}.passages.jsonl"
    if not path.is_file():
        return {}
    found: Spans = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                found[(str(row["query-id"]), str(row["corpus-id"]))] = (
                    int(row["start"]), int(row["end"]))
            except (ValueError, KeyError, TypeError) as exc:
                raise InputError(f"{path}:{lineno}: expected query-id, corpus-id, start, end "
                                 f"({exc})") from None
    return found
