"""The collection manager on every real engine: Qdrant Edge (the embedded default), and
qdrant-client local mode in memory and on disk (a DIR that already holds a local store)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest
from conftest import engine_path
from qdrant_client import QdrantClient, models

from minilm_qdrant import (
    Collection,
    CollectionMismatch,
    CollectionNotFound,
    CollectionOptions,
    Document,
    Embedder,
    InputError,
)
from minilm_qdrant.collection import FINGERPRINT_KEY
from minilm_qdrant.collection.batching import estimated_bytes

DOCS = [
    Document("The cat sat on the mat and purred.", {"kind": "animal"}, "cat"),
    Document("Stock markets fell sharply after the rate decision.", {"kind": "finance"}, "money"),
    Document("The striker scored twice in the cup final.", {"kind": "sport"}, "football"),
    Document("Dogs are loyal companions and love long walks.", {"kind": "animal"}, "dog"),
]


@pytest.fixture(params=["edge", "local-path"])
def store(request: pytest.FixtureRequest, tmp_path) -> str:
    """An on-disk store of its own, on each engine that can reopen one."""
    return engine_path(request.param, tmp_path)


def test_creates_a_dot_product_collection_with_fingerprint(embedder: Embedder, store: str) -> None:
    with Collection("docs", embedder, path=store) as col:
        info = col.engine.info("docs")
    assert info is not None and (info.size, info.distance, info.sparse) == (384, "dot", True)
    assert info.metadata[FINGERPRINT_KEY] == {
        "model": "sentence-transformers/all-MiniLM-L6-v2", "dim": 384, "pooling": "mean",
        "normalize": True, "distance": "dot",
        "sparse": {"kind": "bm25", "language": "english", "k": 1.2, "b": 0.75, "avg_len": 256.0,
                   "tokenizer": "word"},
        "windows": {"size": 254, "overlap": 64, "whole": 254, "last": 254, "coverage": "all",
                    "even": False},  # the model's limit, less [CLS] and [SEP]
        "origins": True,  # folder syncs mark what they write
    }
    assert info.windows and col.windowed


def test_upsert_and_search(embedder: Embedder, location: str) -> None:
    col = Collection("docs", embedder, path=location, batch_size=3)
    report = col.upsert(DOCS)
    assert (report.written, report.failed, report.ok) == (4, 0, True)
    hits = col.search("a kitten resting on a rug", k=2)  # hybrid: the default
    assert hits[0].id == "cat" and hits[0].metadata == {"kind": "animal"}
    assert hits[0].score > hits[1].score
    hits = col.search("a kitten resting on a rug", k=2, mode="dense")
    assert hits[0].id == "cat"
    # Dense scores are the raw dot product of the normalised vectors.
    expected = float(embedder.embed_query("a kitten resting on a rug")
                     @ embedder.embed_documents([DOCS[0].text])[0])
    assert hits[0].score == pytest.approx(expected, abs=1e-4)
    col.close()


def test_same_ingest_twice_never_duplicates(embedder: Embedder, location: str) -> None:
    col = Collection("docs", embedder, path=location)
    col.upsert(DOCS)
    col.upsert(DOCS)
    col.upsert([Document(d.text) for d in DOCS[:2]])  # no ids: keyed by text
    col.upsert([Document(d.text) for d in DOCS[:2]])
    assert col.count() == 6
    col.close()


def test_duplicate_ids_in_one_ingest_last_wins(embedder: Embedder, store: str) -> None:
    with Collection("docs", embedder, path=store, batch_size=2) as col:
        report = col.upsert([*DOCS, Document("A parrot that talks.", {"v": 2}, "cat")])
        assert report.duplicates == 1 and col.count() == 4
        assert col.search("talking bird", 1)[0].metadata == {"v": 2}


def test_filter_by_metadata(embedder: Embedder, location: str) -> None:
    col = Collection("docs", embedder, path=location)
    col.upsert(DOCS)
    only_sport = models.Filter(must=[
        models.FieldCondition(key="metadata.kind", match=models.MatchValue(value="sport"))])
    hits = col.search("animals", k=4, query_filter=only_sport)
    assert [h.id for h in hits] == ["football"]
    col.close()


def test_reopen_uses_the_model_recorded_in_the_collection(embedder: Embedder, store: str) -> None:
    with Collection("docs", embedder, path=store) as col:
        col.upsert(DOCS)
    with Collection("docs", path=store, create=False) as col:
        assert col.embedder.fingerprint == embedder.fingerprint
        assert col.search("loyal pets", 1)[0].id == "dog"


def test_other_dimension_is_refused_before_loading_weights(embedder: Embedder, store: str) -> None:
    with Collection("docs", embedder, path=store) as col:
        col.upsert(DOCS)
    mpnet = Embedder("multi-qa_v1-mpnet-cls_dot")
    with pytest.raises(CollectionMismatch) as err:
        Collection("docs", mpnet, path=store)
    assert "dim=384" in str(err.value) and "dim=768" in str(err.value)
    assert mpnet._backend is None  # no weights were needed to refuse it
    with Collection("docs", path=store) as col:
        assert col.count() == 4  # nothing lost


def test_other_pooling_is_refused(embedder: Embedder, store: str) -> None:
    with Collection("docs", embedder, path=store) as col:  # a stored document binds the model
        col.upsert([Document("HNSW graphs trade memory for recall.", id="a")])
    with pytest.raises(CollectionMismatch, match="pooling=cls"):
        Collection("docs", Embedder("all-MiniLM-L6-v2", pooling="cls"), path=store)


def test_foreign_collection_without_fingerprint_is_refused(embedder: Embedder, store: str) -> None:
    client = QdrantClient(path=store)
    client.create_collection("theirs", vectors_config=models.VectorParams(
        size=384, distance=models.Distance.COSINE))
    with pytest.raises(CollectionMismatch, match="no fingerprint"):
        Collection("theirs", embedder, client=client)


def test_a_callers_client_stays_open_after_a_refused_open(store: str) -> None:
    client = QdrantClient(path=store)
    with pytest.raises(CollectionNotFound):
        Collection("nothing", client=client, create=False)
    assert not client.collection_exists("nothing")  # still usable: not closed for the caller
    client.close()


def test_search_of_missing_collection(store: str) -> None:
    with pytest.raises(CollectionNotFound, match="nothing"):
        Collection("nothing", path=store, create=False)


def test_options_pass_through_to_a_server(embedder: Embedder) -> None:
    """What a cluster would receive: captured at the HTTP transport, nothing pretends to store."""
    sent: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/exists"):
            return httpx.Response(200, json={"result": {"exists": False}, "status": "ok"})
        sent.append(json.loads(request.content))
        return httpx.Response(200, json={"result": True, "status": "ok"})

    client = QdrantClient(url="http://127.0.0.1:6333", transport=httpx.MockTransport(handler),
                          check_compatibility=False)
    Collection("big", embedder, client=client, options=CollectionOptions(
        on_disk=True, on_disk_payload=True, hnsw_m=32, quantization="int8", shard_number=6,
        replication_factor=2, write_consistency_factor=2))
    body = sent[0]
    assert body["vectors"] == {  # the pooled vector in HNSW, every window ranked by MaxSim
        "": {"size": 384, "distance": "Dot", "on_disk": True,  # quantized where HNSW reads it
             "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99,
                                                "always_ram": True}}},
        "windows": {"size": 384, "distance": "Dot", "on_disk": True, "hnsw_config": {"m": 0},
                    "multivector_config": {"comparator": "max_sim"},
                    "datatype": "float16"}}  # the window vectors at half the bytes
    assert (body["shard_number"], body["replication_factor"], body["write_consistency_factor"],
            body["on_disk_payload"]) == (6, 2, 2, True)
    assert body["hnsw_config"] == {"m": 32}
    assert body["metadata"][FINGERPRINT_KEY]["model"] == "sentence-transformers/all-MiniLM-L6-v2"


@pytest.mark.parametrize("on_disk", [None, True])
def test_edge_keeps_the_payload_in_ram_unless_asked(
    embedder: Embedder, tmp_path, on_disk: bool | None
) -> None:
    """Every hit reads its text: the embedded store keeps payloads in RAM by default (Edge's
    own default is on disk); asked for disk, it is on disk; reopened, the texts are intact."""
    options = CollectionOptions(on_disk_payload=on_disk)
    with Collection("docs", embedder, path=str(tmp_path), options=options) as col:
        col.upsert([Document("cats sleep in the sun", id="a"), Document("dogs bark", id="b")])
    config = json.loads(next(tmp_path.rglob("edge_config.json")).read_text())
    assert config["on_disk_payload"] is bool(on_disk)
    with Collection("docs", embedder, path=str(tmp_path)) as col:
        hit = col.search("where do cats sleep?", k=1)[0]
        assert (hit.id, hit.text) == ("a", "cats sleep in the sun")


def test_batches_are_bounded_by_bytes(embedder: Embedder) -> None:
    col = Collection("docs", embedder, max_batch_bytes=100_000)  # 2 windows a document
    batches = col.writer().items(Document(f"text {i} " * 200, id=i) for i in range(10))
    sizes = [len(b) for b in batches]
    assert sum(sizes) == 10 and max(sizes) < 10
    with pytest.raises(InputError, match="request bound"):
        list(col.writer().items([Document("x" * 100_000, id="huge")]))


def test_a_long_documents_point_goes_alone_up_to_the_request_bound(embedder: Embedder) -> None:
    """Batches aim at 4 MiB; a point bigger than that (every window's vector travels with it:
    a 400-page judgment) is sent alone instead of refused, up to the 30 MiB request bound."""
    col = Collection("docs", embedder)
    long = Document("The appellant's counsel cited the earlier judgment. " * 10_000, id="long")
    batches = list(col.writer().items([Document("a", id=1), long, Document("b", id=2)]))
    assert [[doc.id for doc, _ in b] for b in batches] == [[1], ["long"], [2]]
    windows = len(batches[1][0][1])
    assert estimated_bytes(long, embedder.dim, True, windows) > 4 * 1024 * 1024


def test_bad_vectors_are_caught_before_sending(embedder: Embedder) -> None:
    from minilm_qdrant.collection.batching import check_vectors

    vectors = np.ones((2, 384), dtype=np.float32)
    vectors[1, 3] = np.nan
    with pytest.raises(InputError, match=r"'b'.*NaN"):
        check_vectors(vectors, [Document("a", id="a"), Document("b", id="b")], 384)
    with pytest.raises(InputError, match="all-zero"):
        check_vectors(np.zeros((1, 384), np.float32), [Document("z", id="z")], 384)


def test_ingest_counts_truncation_without_a_warning_per_batch(
    embedder: Embedder, caplog: pytest.LogCaptureFixture
) -> None:
    long = [Document("token " * 400, id=i) for i in range(5)]
    with caplog.at_level("WARNING", logger="minilm_qdrant"):
        report = Collection("docs", embedder, batch_size=2).upsert(long)
        assert (report.truncated, report.windowed, report.windows) == (0, 5, 10)  # every token
        legacy = Collection("old", embedder, batch_size=2,  # one vector a text, as before windows
                            options=CollectionOptions(windows=None)).upsert(long)
    assert (legacy.truncated, legacy.windowed, legacy.windows) == (5, 0, 5)
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_same_ids_and_scores_on_every_engine(embedder: Embedder, tmp_path) -> None:
    results = []
    for kind in ("edge", "local-path", "memory"):
        with Collection("docs", embedder, path=engine_path(kind, tmp_path / kind)) as col:
            col.upsert(DOCS)
            hits = col.search("pets", k=4)
            results.append([(h.id, round(h.score, 4)) for h in hits])
    assert results[0] == results[1] == results[2]


def test_filters_payload_indexes_scroll_and_delete(embedder: Embedder, location: str) -> None:
    docs = [Document(d.text, {**d.metadata, "n": i}, d.id) for i, d in enumerate(DOCS)]
    with Collection("docs", embedder, path=location) as col:
        col.upsert(docs)
        col.index_metadata("kind")
        col.index_metadata("n", "integer")
        with pytest.raises(InputError, match="index kind"):
            col.index_metadata("n", "number")
        flt = models.Filter(
            must=[models.FieldCondition(key="metadata.kind",
                                        match=models.MatchAny(any=["animal", "sport"]))],
            must_not=[models.FieldCondition(key="metadata.n", range=models.Range(gte=3))],
        )
        assert {h.id for h in col.search("anything", k=4, query_filter=flt)} == {"cat", "football"}
        exact = col.search("pets", k=2, exact=True)
        assert [h.id for h in col.search("pets", k=2, hnsw_ef=64)] == [h.id for h in exact]
        pages = list(col.engine.scroll("docs", batch=3))
        points = [p for page in pages for p in page]
        assert len(points) == 4 and all(p.vector is not None and p.vector.shape == (384,)
                                        for p in points)
        col.delete(["cat", "dog"])
        assert col.count() == 2
        assert {h.id for h in col.search("pets", k=4)} == {"money", "football"}
