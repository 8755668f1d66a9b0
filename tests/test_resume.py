"""Resume without re-embedding, on every engine: each point records a hash of what was
embedded; a rerun skips what is stored unchanged and embeds only what is missing or changed."""

from __future__ import annotations

import pytest

from minilm_qdrant import Collection, Document, Embedder
from minilm_qdrant.documents import HASH_KEY

DOCS = [Document(f"Passage {i} about topic {i % 3}.", {"i": i, "tags": {"t": i % 3}}, f"d{i}")
        for i in range(12)]


@pytest.fixture
def col(location: str, embedder: Embedder):
    c = Collection("docs", embedder, path=location, batch_size=5)
    yield c
    c.close()


def test_a_finished_ingest_rerun_embeds_nothing(col: Collection) -> None:
    first = col.upsert(DOCS)
    assert (first.written, first.unchanged) == (12, 0) and first.tokens > 0
    again = col.upsert(DOCS)
    assert (again.written, again.unchanged, again.tokens, again.ok) == (0, 12, 0, True)
    assert col.count() == 12


def test_an_interrupted_ingest_rerun_embeds_only_the_rest(col: Collection) -> None:
    col.upsert(DOCS[:7])  # as if stopped after 7
    rest = col.upsert(DOCS)
    assert (rest.written, rest.unchanged) == (5, 7) and col.count() == 12


def test_changes_are_written_and_only_changed_text_is_embedded(col: Collection) -> None:
    col.upsert(DOCS)
    changed = list(DOCS)
    changed[0] = Document("A new text for d0.", DOCS[0].metadata, "d0")  # re-embedded
    changed[1] = Document(DOCS[1].text, {"i": 1, "tags": {"x": 9}}, "d1")  # metadata only
    report = col.upsert(changed)
    assert (report.written, report.unchanged) == (2, 10)
    d0, d1 = col.get(["d0", "d1"])
    assert d0.text == "A new text for d0." and col.search("new text", k=1)[0].id == "d0"
    assert d1.metadata == {"i": 1, "tags": {"x": 9}}  # replaced, not merged
    tokens_one = col.embedder.encode_documents(["A new text for d0."]).tokens
    assert report.tokens == tokens_one  # only d0 was embedded


def test_force_and_points_without_a_hash_are_embedded(col: Collection) -> None:
    col.upsert(DOCS)
    forced = col.upsert(DOCS, skip_unchanged=False)
    assert (forced.written, forced.unchanged) == (12, 0)
    # a point written before hashes existed (no hash in its payload) is embedded once more
    vec = col.embedder.embed_documents([DOCS[0].text])
    col.engine.upsert("docs", [DOCS[0].point_id], vec, [DOCS[0].payload()],
                      col.sparse.encode_documents([DOCS[0].text]) if col.sparse else None)
    assert HASH_KEY not in col.engine.retrieve("docs", [DOCS[0].point_id])[0].payload
    report = col.upsert(DOCS)
    assert (report.written, report.unchanged) == (1, 11)
    assert HASH_KEY in col.engine.retrieve("docs", [DOCS[0].point_id])[0].payload
