"""Documents of any length: windows cut on the model's tokenizer, every window embedded and
stored (MaxSim multivector beside a pooled vector), the passage that answered on every hit,
long queries windowed; on Qdrant Edge and qdrant-client local mode with the real weights."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import engine_path
from faults import record

from minilm_qdrant import Collection, Document, Embedder
from minilm_qdrant.collection import CollectionOptions
from minilm_qdrant.documents import point_id
from minilm_qdrant.errors import InputError
from minilm_qdrant.windows import (
    CODES_KEY,
    SPANS_KEY,
    Windows,
    WindowSettings,
    best_window,
    coded_windows,
)

PROGRAMME = Path(__file__).resolve().parents[1] / "examples" / "conference.jsonl"
SESSIONS = [json.loads(line) for line in PROGRAMME.read_text().splitlines()]


def long_documents(per: int = 9) -> tuple[list[Document], dict[str, tuple[str, int, int]]]:
    """The programme joined ``per`` sessions a document (titled sections, blank lines
    between), and where each session sits: session id -> (document id, start, end)."""
    docs: list[Document] = []
    where: dict[str, tuple[str, int, int]] = {}
    for n, first in enumerate(range(0, len(SESSIONS), per)):
        text, doc_id = "", f"L{n}"
        for s in SESSIONS[first:first + per]:
            section = f"{s['title']}\n{s['text']}"
            start = len(text) + (2 if text else 0)
            text = f"{text}\n\n{section}" if text else section
            where[s["id"]] = (doc_id, start, start + len(section))
        docs.append(Document(text, {"part": n}, id=doc_id))
    return docs, where


@pytest.fixture(params=["edge", "local-path"])
def col(request: pytest.FixtureRequest, embedder: Embedder, tmp_path: Path) -> Collection:
    with Collection("long", embedder, path=engine_path(request.param, tmp_path)) as c:
        yield c


def test_windows_fit_the_model_cover_every_token_and_prefer_sentence_ends(
        embedder: Embedder) -> None:
    cutter = Windows.of(embedder, WindowSettings())
    assert cutter.size == 254 and cutter.overlap == 64  # 256 less [CLS] and [SEP]
    docs, _ = long_documents()
    tokenizer = embedder.tokenizer()
    for doc in docs:
        spans = cutter.cut([doc.text])[0]
        assert len(spans) > 1
        covered = np.zeros(len(doc.text), dtype=bool)
        sizes = [len(tokenizer.encode(doc.text[a:b], add_special_tokens=False).ids)
                 for a, b in spans]
        assert max(sizes) <= 254
        assert spans[-1][1] == len(doc.text.rstrip())  # to the last word
        for a, b in spans:
            covered[a:b] = True
        gaps = "".join(c for c, seen in zip(doc.text, covered, strict=True) if not seen)
        assert not gaps.strip()  # every character but whitespace is in a window
        assert all(a2 < b1 for (_, b1), (a2, _) in itertools.pairwise(spans))  # overlap
        ends = [doc.text[b - 1] in ".!?" or doc.text[b:b + 1] == "\n" for a, b in spans[:-1]]
        assert sum(ends) >= len(ends) * 0.75  # cut at sentence or line ends
    assert cutter.cut(["a short text"]) == [[(0, 12)]]


def test_every_window_is_stored_and_a_fact_deep_in_a_document_is_found(col: Collection) -> None:
    docs, where = long_documents()
    report = col.upsert(docs)
    assert report.ok and report.truncated == 0 and report.windowed == len(docs)
    assert report.windows > 3 * len(docs)
    stored = {p.payload["doc_id"]: p for page in col.engine.scroll(col.name, 64)
              for p in page}
    cutter = col.windows
    assert cutter is not None
    for doc in docs:
        spans = cutter.cut([doc.text])[0]
        point = stored[doc.id]
        assert point.windows is not None and point.windows.shape == (len(spans), 384)
        assert point.sparse is not None and len(point.sparse.indices) > 0
        assert point.payload["windows"] == [list(s) for s in spans]
        alone = col.embedder.embed_documents([doc.text[a:b] for a, b in spans])
        assert np.abs(point.windows - alone).max() < 1e-4  # each window embedded on its own
    # sessions late in their document: truncation to 256 word pieces never saw them
    late = [s for s in SESSIONS if where[s["id"]][1] > 3000]
    assert len(late) >= 6
    found = passages = 0
    for s in late:
        for mode in ("dense", "hybrid"):
            hits = col.search(s["title"], k=1, mode=mode)  # type: ignore[arg-type]
            doc_id, start, end = where[s["id"]]
            if hits[0].id == doc_id:
                found += 1
                p = hits[0].passage
                assert p is not None and p.text == hits[0].text[p.start:p.end]
                passages += p.start < end and start < p.end
    assert found >= 0.9 * 2 * len(late) and passages >= 0.9 * found
    record("long documents: sessions deep in 4 joined documents, searched by title",
           f"found {found} of {2 * len(late)} (dense, hybrid); passage overlaps the session in "
           f"{passages}", 2 * len(late), found)


def test_a_long_query_is_windowed_and_finds_the_document_it_comes_from(col: Collection) -> None:
    docs, _ = long_documents()
    col.upsert(docs)
    assert col.windows is not None
    for doc in docs:
        query = doc.text[len(doc.text) // 3:]  # a document as a query: several windows
        rows = col.windows.embed_query(col.embedder, query)
        assert len(rows) > 1
        for mode in ("dense", "hybrid"):
            assert col.search(query, k=1, mode=mode)[0].id == doc.id  # type: ignore[arg-type]


def test_sparse_hits_and_short_documents_carry_a_passage_too(col: Collection) -> None:
    docs, where = long_documents()
    col.upsert([*docs, Document("A short note on vector quantisation.", id="short")])
    doc_id, start, end = where["s03"]
    hit = col.search("scalar product binary quantisation codebooks", k=1, mode="sparse")[0]
    assert hit.id == doc_id and hit.passage is not None
    assert hit.passage.start < end and start < hit.passage.end
    short = next(h for h in col.search("short note quantisation", k=5) if h.id == "short")
    assert short.passage is not None and short.passage.text == short.text
    assert (short.passage.start, short.passage.end) == (0, len(short.text))
    assert "passage" in short.as_dict()


def test_passages_for_the_first_hits_only_are_the_same_passages(col: Collection) -> None:
    docs, _ = long_documents()
    col.upsert(docs)
    query = "how many judged queries do I need for a significant difference in NDCG?"
    every = col.search(query, k=4)
    first = col.search(query, k=4, passages=2)
    assert [(h.id, h.score) for h in first] == [(h.id, h.score) for h in every]
    assert [h.passage for h in first[:2]] == [h.passage for h in every[:2]]
    assert all(h.passage is not None for h in every)
    assert all(h.passage is None for h in first[2:])


def test_a_long_hits_passage_comes_from_its_payload_and_matches_its_stored_windows(
    col: Collection,
) -> None:
    docs, _ = long_documents()
    col.upsert([*docs, Document("A short note on vector quantisation.", id="short")])
    query = "offline evaluation with judged queries, recall and NDCG"
    assert col.windows is not None
    rows = col.windows.embed_query(col.embedder, query)
    hits = col.search(query, k=len(docs) + 1)
    stored = {p.payload["doc_id"]: p for p in col.engine.retrieve(
        "long", [point_id(h.id) for h in hits], windows=True)}
    for hit in hits:
        point = stored[hit.id]
        assert hit.passage is not None
        if hit.id == "short":  # one window: no codes, the whole text
            assert CODES_KEY not in point.payload and hit.passage.text == hit.text
            continue
        coded = coded_windows(point.payload[CODES_KEY], col.embedder.dim)
        assert point.windows is not None and coded is not None
        assert np.abs(coded - point.windows).max() < 0.01  # int8 of each window's vector
        start, end = point.payload[SPANS_KEY][best_window(rows, point.windows)]
        assert (hit.passage.start, hit.passage.end) == (start, end)
    # points written before the codes (none, or unreadable ones): read from the engine instead
    col.engine.set_payload("long", {CODES_KEY: None}, None, ids=[point_id(hits[0].id)])
    col.engine.set_payload("long", {CODES_KEY: "not codes"}, None, ids=[point_id(hits[1].id)])
    again = col.search(query, k=len(docs) + 1)
    assert [(h.id, h.passage) for h in again] == [(h.id, h.passage) for h in hits]


@pytest.mark.parametrize("engine", ["edge", "local-path"])
@pytest.mark.parametrize("datatype", ["float16", "float32"])
def test_window_vectors_are_stored_as_float16_unless_chosen(
    embedder: Embedder, tmp_path: Path, engine: str, datatype: str
) -> None:
    options = CollectionOptions(window_datatype=datatype)  # type: ignore[arg-type]
    docs, where = long_documents()
    with Collection("long", embedder, path=engine_path(engine, tmp_path),
                    options=options) as col:
        col.upsert(docs)
        if engine == "edge":
            config = json.loads(next(tmp_path.rglob("edge_config.json")).read_text())
            stored = config["vectors"]["windows"].get("datatype", "float32")
        else:
            params = col.engine.client.get_collection("long").config.params  # type: ignore[attr-defined]
            stored = (params.vectors["windows"].datatype or "float32").lower()
        assert stored == datatype
        doc_id, start, end = where["s07"]
        hit = col.search("offline evaluation with judged queries, recall and NDCG", k=1)[0]
        assert hit.id == doc_id and hit.passage is not None
        assert hit.passage.start < end and start < hit.passage.end
        window = col.engine.retrieve("long", [point_id(hit.id)], windows=True)[0].windows
        assert window is not None and window.dtype == np.float32 and len(window) > 1


def test_an_unknown_window_datatype_is_refused_by_name() -> None:
    with pytest.raises(InputError, match="window_datatype 'bfloat16' is not one of"):
        CollectionOptions(window_datatype="bfloat16")  # type: ignore[arg-type]


def test_a_rerun_skips_unchanged_long_documents_and_reembeds_changed_ones(
        col: Collection) -> None:
    docs, _ = long_documents()
    col.upsert(docs)
    again = col.upsert(docs)
    assert again.unchanged == len(docs) and again.windows == 0 and again.tokens == 0
    edited = [Document(docs[0].text + " An added closing sentence.", docs[0].metadata,
                       id=docs[0].id), *docs[1:]]
    third = col.upsert(edited)
    assert third.unchanged == len(docs) - 1 and third.written == 1 and third.windowed == 1


def test_windows_settings_are_in_the_fingerprint_and_queries_follow_them(
        embedder: Embedder, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    settings = WindowSettings(size=128, overlap=32)
    docs, _ = long_documents()
    with Collection("c", embedder, path=store,
                    options=CollectionOptions(windows=settings)) as col:
        report = col.upsert(docs)
    with Collection("c", path=store) as reopened:  # the stored settings, not the defaults
        assert reopened.windows is not None
        assert (reopened.windows.size, reopened.windows.overlap) == (128, 32)
        n = sum(len(reopened.windows.cut([d.text])[0]) for d in docs)
        assert n == report.windows
    with pytest.raises(Exception, match="over the model's limit of 510"):
        Collection("d", embedder, path=store, options=CollectionOptions(
            windows=WindowSettings(size=600)))


def test_a_collection_without_windows_keeps_working_and_reembed_moves_it(
        embedder: Embedder, tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    docs, where = long_documents()
    with Collection("old", embedder, path=store,
                    options=CollectionOptions(windows=None)) as old:
        report = old.upsert(docs)
        assert report.truncated == len(docs) and not old.windowed
        hit = old.search("Shrinking Embeddings quantisation", k=1)[0]  # works as before
        assert hit.passage is not None and hit.passage.text == hit.text
        moved = old.reembed(embedder, to_collection="new")  # same model: every window now
        assert moved.written == len(docs)
    with Collection("new", path=store) as new:
        assert new.windowed and new.count() == len(docs)
        late = [s for s in SESSIONS if where[s["id"]][1] > 3000]
        assert sum(new.search(s["title"], k=1, mode="dense")[0].id == where[s["id"]][0]
                   for s in late) >= 0.9 * len(late)


def test_push_carries_every_window(embedder: Embedder, tmp_path: Path) -> None:
    from minilm_qdrant.push import push

    docs, _ = long_documents()
    store = str(tmp_path / "edge")
    with Collection("c", embedder, path=store) as col:
        col.upsert(docs)
        before = {h.id: (round(h.score, 4), h.passage) for h in col.search("HNSW graphs", k=4)}
    report = push(path=store, collection="c", to_path=str(tmp_path / "target"), batch_size=2)
    assert report.ok and report.copied == len(docs)
    with Collection("c", path=str(tmp_path / "target")) as target:
        assert target.windowed
        after = {h.id: (round(h.score, 4), h.passage) for h in target.search("HNSW graphs", k=4)}
        points = [p for page in target.engine.scroll("c", 64) for p in page]
    assert after == before
    assert all(p.windows is not None and len(p.windows) > 1 for p in points)
