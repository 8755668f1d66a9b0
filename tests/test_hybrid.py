"""Hybrid retrieval on every real engine: BM25 sparse vectors beside the dense ones, fused in
Qdrant (DBSF, RRF), sparse-only and dense-only modes, MMR, filters on every stage."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import engine_path
from qdrant_client import models

from minilm_qdrant import Collection, CollectionOptions, Document, Embedder, InputError
from minilm_qdrant.collection import FINGERPRINT_KEY
from minilm_qdrant.engines.client import ClientEngine
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings

DOCS = [
    Document("The cat sat on the mat and purred.", {"kind": "animal"}, "cat"),
    Document("Stock markets fell sharply after the rate decision.", {"kind": "finance"}, "money"),
    Document("The striker scored twice in the cup final.", {"kind": "sport"}, "football"),
    Document("Dogs are loyal companions and love long walks.", {"kind": "animal"}, "dog"),
    Document("Zygomorphic flowers attract specialised pollinators.", {"kind": "plant"}, "flower"),
    Document("A kitten naps on a warm rug.", {"kind": "animal"}, "kitten"),
    Document("A kitten naps on a warm rug by the fire.", {"kind": "animal"}, "kitten2"),
    Document("A kitten naps on a warm rug by the fire place.", {"kind": "animal"}, "kitten3"),
]
ANIMALS = models.Filter(must=[
    models.FieldCondition(key="metadata.kind", match=models.MatchValue(value="animal"))])


@pytest.fixture
def col(location: str, embedder: Embedder):
    c = Collection("docs", embedder, path=location)
    assert c.upsert(DOCS).ok
    yield c
    c.close()


def test_new_collections_carry_bm25_and_default_to_hybrid(col: Collection) -> None:
    info = col.engine.info("docs")
    assert info is not None and info.sparse
    assert info.metadata[FINGERPRINT_KEY]["sparse"] == Bm25Settings().as_dict()
    assert col.default_mode == "hybrid"
    # the sparse vector of every point is there with its dense one
    points = [p for page in col.engine.scroll("docs", 100) for p in page]
    assert len(points) == len(DOCS)
    assert all(p.vector is not None and p.sparse is not None and len(p.sparse.indices) > 0
               for p in points)


def test_sparse_mode_is_lexical_dense_is_semantic_hybrid_has_both(col: Collection) -> None:
    # A rare word only one document holds: BM25 finds it; the dense model is unsure.
    sparse = col.search("zygomorphic", k=3, mode="sparse")
    assert [h.id for h in sparse] == ["flower"]  # only documents holding the term
    dense = col.search("a feline resting", k=3, mode="dense")
    assert dense[0].id in ("cat", "kitten", "kitten2", "kitten3")
    assert col.search("a feline resting", k=3, mode="sparse") == []  # no shared term
    for fusion in ("dbsf", "rrf"):
        hybrid = col.search("zygomorphic flowers", k=3, fusion=fusion)
        assert hybrid[0].id == "flower"
        assert [h.score for h in hybrid] == sorted((h.score for h in hybrid), reverse=True)


def test_dense_mode_scores_are_the_raw_dot_product(col: Collection, embedder: Embedder) -> None:
    hit = col.search("a kitten resting on a rug", k=1, mode="dense")[0]
    doc = next(d for d in DOCS if d.id == hit.id)
    expected = float(embedder.embed_query("a kitten resting on a rug")
                     @ embedder.embed_documents([doc.text])[0])
    assert hit.score == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("mode", ["hybrid", "dense", "sparse"])
@pytest.mark.parametrize("diversity", [0.0, 0.5])
def test_filters_apply_to_every_mode(col: Collection, mode: str, diversity: float) -> None:
    hits = col.search("the cat and the stock market", k=8, mode=mode,  # type: ignore[arg-type]
                      query_filter=ANIMALS, diversity=diversity)
    assert hits and {h.metadata["kind"] for h in hits} == {"animal"}


def test_mmr_trades_relevance_for_diversity_in_the_engine(col: Collection) -> None:
    plain = [h.id for h in col.search("kitten napping on a rug", k=3, mode="dense")]
    assert set(plain) == {"kitten", "kitten2", "kitten3"}  # three near-duplicates
    assert [h.id for h in col.search("kitten napping on a rug", k=3, mode="dense",
                                     diversity=0.0)] == plain
    diverse = [h.id for h in col.search("kitten napping on a rug", k=3, mode="dense",
                                        diversity=0.8)]
    assert diverse[0] == plain[0] and len(set(diverse) - set(plain)) >= 1
    hybrid = [h.id for h in col.search("kitten napping on a rug", k=3, diversity=0.8)]
    assert len(set(hybrid) - {"kitten", "kitten2", "kitten3"}) >= 1


def test_bad_search_arguments_are_named(col: Collection) -> None:
    for kwargs, message in [({"mode": "bm42"}, "search mode 'bm42'"),
                            ({"fusion": "max"}, "fusion 'max'"),
                            ({"diversity": 1.5}, "diversity must be between 0 and 1"),
                            ({"prefetch": 0}, "prefetch must be >= 1"),
                            ({"k": 0}, "k must be >= 1")]:
        with pytest.raises(InputError, match=message):
            col.search("cats", **kwargs)  # type: ignore[arg-type]


def test_engines_agree_on_hybrid(embedder: Embedder, tmp_path) -> None:
    results = []
    for kind in ("edge", "memory"):
        with Collection("docs", embedder, path=engine_path(kind, tmp_path)) as c:
            c.upsert(DOCS)
            results.append([(h.id, round(h.score, 3)) for h in c.search("cat on a mat", k=5)])
    assert results[0] == results[1]


def test_dense_only_collections_keep_working_and_say_how_to_get_hybrid(
    embedder: Embedder, store: str
) -> None:
    with Collection("old", embedder, path=store, options=CollectionOptions(sparse=None)) as c:
        c.upsert(DOCS)
        assert c.sparse is None and c.default_mode == "dense"
        assert c.engine.info("old").sparse is False  # type: ignore[union-attr]
    with Collection("old", path=store) as c:  # reopened: the fingerprint has no BM25
        assert c.search("a kitten", k=1)[0].id.startswith("kitten")
        for mode in ("hybrid", "sparse"):
            with pytest.raises(InputError, match=r"no BM25 sparse vectors.*--mode dense.*new "
                                                 r"collection"):
                c.search("a kitten", mode=mode)  # type: ignore[arg-type]


def test_add_sparse_gives_a_dense_only_collection_hybrid_without_reembedding(
    embedder: Embedder, store: str
) -> None:
    with Collection("old", embedder, path=store, options=CollectionOptions(sparse=None)) as c:
        c.upsert(DOCS)
        before = {p.id: p.vector for page in c.engine.scroll("old", 100) for p in page}
    with Collection("old", path=store) as c:
        assert c.default_mode == "dense"
        assert c.add_sparse() == len(DOCS)
        assert [h.id for h in c.search("zygomorphic", k=3, mode="sparse")] == ["flower"]
        with pytest.raises(InputError, match="already has BM25"):
            c.add_sparse()
    with Collection("old", path=store) as c:  # the fingerprint records it
        assert c.default_mode == "hybrid" and c.sparse is not None
        after = [p for page in c.engine.scroll("old", 100) for p in page]
        assert all(np.array_equal(p.vector, before[p.id]) for p in after)  # not re-embedded
        assert all(p.sparse is not None for p in after)
        assert c.search("zygomorphic flowers", k=1)[0].id == "flower"


def test_add_sparse_where_qdrant_cannot_add_a_vector_says_what_to_do(
    embedder: Embedder,
) -> None:
    with Collection("m", embedder, path=":memory:", options=CollectionOptions(sparse=None)) as c:
        c.upsert(DOCS[:2])
        with pytest.raises(InputError, match="new collection"):
            c.add_sparse()
        assert c.default_mode == "dense" and c.count() == 2


def test_bm25_settings_come_from_the_fingerprint(embedder: Embedder, store: str) -> None:
    german = Bm25Settings(language="german", k=1.5, b=0.5, avg_len=100)
    docs = [Document("Die Katzen schlafen auf der Matte.", id="katze"),
            Document("Der Hund läuft im Park.", id="hund")]
    with Collection("de", embedder, path=store, options=CollectionOptions(sparse=german)) as c:
        c.upsert(docs)
    with Collection("de", path=store) as c:  # no options: the stored settings are used
        assert c.sparse is not None and c.sparse.settings == german
        assert [h.id for h in c.search("Katze", mode="sparse")] == ["katze"]  # stemmed: Katz


def test_bad_bm25_settings_fail_before_anything_is_created(embedder: Embedder, store: str) -> None:
    with pytest.raises(InputError, match="unsupported language"):
        Collection("x", embedder, path=store,
                   options=CollectionOptions(sparse=Bm25Settings(language="klingon")))
    with pytest.raises(InputError, match="tokenizer"):
        Bm25Settings(tokenizer="nope")


def test_stopword_only_texts_are_stored_with_an_empty_sparse_vector(
    embedder: Embedder, store: str
) -> None:
    with Collection("s", embedder, path=store) as c:
        assert c.upsert([Document("The", id="the"), *DOCS[:2]]).written == 3
        assert c.count() == 3
        assert "the" in [h.id for h in c.search("the", k=3)]  # found by its dense vector
        assert c.search("the", mode="sparse") == []  # no term left after stopwords


def test_client_engine_sends_sparse_vectors_and_engine_side_fusion(embedder: Embedder) -> None:
    """What a server receives: both vectors in the same upsert, prefetch + fusion in the
    query (fusion runs in Qdrant, never in Python)."""
    from faults import FaultInjector

    faults = FaultInjector()
    c = faults.collection(embedder)
    c.upsert(DOCS[:2])
    batch = faults.upserts[0].body["batch"]
    assert set(batch["vectors"]) == {"", "bm25", "windows"}  # all of a point's in one write
    assert len(batch["vectors"]["bm25"]) == len(batch["vectors"][""]) == 2
    assert len(batch["vectors"]["windows"]) == 2
    expected = Bm25Encoder().encode_documents([DOCS[0].text])[0]
    sent = batch["vectors"]["bm25"][[p["doc_id"] for p in batch["payloads"]].index("cat")]
    assert sent["indices"] == list(expected.indices)
    create = next(s for s in faults.sent if s.method == "PUT" and s.path == "/collections/docs")
    assert create.body["sparse_vectors"] == {"bm25": {"modifier": "idf"}}
    assert isinstance(c.engine, ClientEngine)
    try:
        c.search("cats", k=3, query_filter=ANIMALS)
    except Exception:  # noqa: BLE001 - the injector stores nothing; only the request matters
        pass
    query = next(s for s in faults.sent if s.path.endswith("/points/query"))
    assert query.body["query"] == {"fusion": "dbsf"} and query.body["limit"] == 3
    # dense: MaxSim over every window of the candidates of the pooled vector's HNSW and BM25
    dense, sparse = query.body["prefetch"]
    assert (dense["using"], sparse["using"]) == ("windows", "bm25")
    pooled, lexical = dense["prefetch"]
    assert (pooled.get("using"), lexical["using"]) == (None, "bm25")
    assert pooled["limit"] == 3 * lexical["limit"] == 300
    assert len(dense["query"]) == 1  # a short query is one window
    stages = (dense, sparse, pooled, lexical)
    assert all(p["filter"] == query.body["filter"] for p in stages)
