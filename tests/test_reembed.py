"""`reembed`: a collection rebuilt with another model from its stored text, on every engine;
ids, metadata and BM25 kept; the old one answers until the swap; an interrupted run resumes."""

from __future__ import annotations

import numpy as np
import pytest
from faults import record

from minilm_qdrant import Collection, Document, Embedder, InputError
from minilm_qdrant.collection.reembed import target_name

MODEL = "all-MiniLM-L6-v2"
DOCS = [Document(f"Passage {i} about {['rivers', 'engines', 'bread'][i % 3]} number {i}.",
                 {"i": i, "topic": ["water", "machines", "food"][i % 3]}, f"d{i}")
        for i in range(11)] + [Document("A document without an id of its own.", {"anon": True})]


@pytest.fixture(scope="module")
def other() -> Embedder:
    """Another model: the same weights with CLS pooling (another fingerprint, other vectors)."""
    e = Embedder(MODEL, backend="torch", pooling="cls")
    e.load()
    return e


def test_reembed_then_swap(location: str, embedder: Embedder, other: Embedder) -> None:
    with Collection("docs", embedder, path=location, batch_size=4) as col:
        col.upsert(DOCS)
        before = [h.id for h in col.search("bread", k=5)]
        report = col.reembed(other)
        assert report.target == target_name(col, other) and not report.swapped
        assert (report.points, report.written, report.unchanged) == (12, 12, 0)
        # the old collection is intact and still answers with the old model
        assert col.count() == 12 and [h.id for h in col.search("bread", k=5)] == before
        new = Collection(report.target, engine=col.engine)
        assert new.embedder.fingerprint == other.fingerprint and new.sparse is not None
        old_docs = {str(d.id): d for d in col.find()}
        new_docs = {str(d.id): d for d in new.find()}
        assert new_docs == old_docs  # same ids, texts and metadata
        stored = {p.id: p for page in new.engine.scroll(report.target, 64) for p in page}
        for doc in DOCS[:3]:
            expected = other.embed_documents([doc.text])[0]
            assert np.allclose(stored[doc.point_id].vector, expected, atol=1e-5)
            assert stored[doc.point_id].sparse is not None  # BM25 kept
        answers = [h.id for h in new.search("bread", k=3)]
        col.swap(report.target)
        assert col.embedder.fingerprint == other.fingerprint  # this object follows the swap
        assert [h.id for h in col.search("bread", k=3)] == answers
        swapped = Collection("docs", engine=col.engine)
        assert swapped.embedder.fingerprint == other.fingerprint  # no --model needed
        assert swapped.count() == 12
        assert swapped.search("bread", k=3)[0].metadata["topic"] == "food"
    if location != ":memory:":  # and so it stays in the store
        with Collection("docs", path=location) as reopened:
            assert reopened.embedder.fingerprint == other.fingerprint
            assert reopened.count() == 12


def test_an_interrupted_reembed_resumes(store: str, embedder: Embedder, other: Embedder) -> None:
    with Collection("docs", embedder, path=store, batch_size=4) as col:
        col.upsert(DOCS)
        seen = [0]

        def stop_after_one_batch(n: int) -> None:  # the fault: Ctrl-C after the first batch
            seen[0] += n
            raise KeyboardInterrupt

        with pytest.raises(KeyboardInterrupt):
            col.reembed(other, on_progress=stop_after_one_batch)
        assert col.count() == 12  # the source is untouched
        report = col.reembed(other)
        assert report.unchanged == seen[0] > 0 and report.written == 12 - seen[0]
        assert report.points == 12
        record("Ctrl-C during a reembed of 12, after the first batch; rerun",
               f"source untouched (12); rerun skipped the {seen[0]} re-embedded, wrote "
               f"{report.written}", 12, report.points)


def test_same_model_and_same_name_are_refused(store: str, embedder: Embedder) -> None:
    with Collection("docs", embedder, path=store) as col:
        col.upsert(DOCS[:2])
        with pytest.raises(InputError, match="already holds"):
            col.reembed(Embedder(MODEL, backend="torch"))
        with pytest.raises(InputError, match="must differ"):
            col.reembed(Embedder(MODEL, backend="torch", pooling="cls"), to_collection="docs")


def test_exchange_without_renameat2_swaps_by_renames(tmp_path, monkeypatch) -> None:
    from minilm_qdrant.engines import edge_files

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "f").write_text("old")
    (b / "f").write_text("new")

    class NoRenameat2:  # a libc without renameat2 (older glibc, other systems)
        def __init__(self, *args: object, **kwargs: object) -> None: ...

    monkeypatch.setattr(edge_files.ctypes, "CDLL", NoRenameat2)
    edge_files.exchange(a, b)
    assert (a / "f").read_text() == "new" and (b / "f").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b"]
