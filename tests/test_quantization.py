"""Quantized collections: int8 and binary on the embedded store (a quantized copy in RAM,
originals on disk, every search rescored), recorded in the fingerprint, kept by push and
reembed; qdrant-client's local mode records it and searches exactly; what a server receives."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import engine_path, index_in_process
from qdrant_client import QdrantClient

from minilm_qdrant import (
    Collection,
    CollectionMismatch,
    CollectionOptions,
    Document,
    Embedder,
    InputError,
)
from minilm_qdrant.collection import FINGERPRINT_KEY
from minilm_qdrant.engines import OVERSAMPLING, CollectionInfo
from minilm_qdrant.fingerprint import Fingerprint
from minilm_qdrant.push import push

TOPICS = ["cats", "stock markets", "football", "dogs", "rain", "chess", "volcanoes", "bread",
          "jazz", "satellites", "tax law", "knitting"]
DOCS = [Document(f"Note {i}: a short text about {topic}, number {i} of its kind.",
                 {"topic": topic}, f"d{i}") for i, topic in enumerate(TOPICS * 5)]
QUERIES = ["pets that purr", "weather and storms", "investing money", "baking at home"]
CONFIG = {"int8": {"scalar": {"type": "int8", "quantile": 0.99, "always_ram": True}},
          "binary": {"binary": {"always_ram": True, "encoding": "two_bits",
                                "query_encoding": "scalar8bits"}}}


def ranked(col: Collection, query: str, **kwargs: Any) -> list[tuple[str, float]]:
    return [(str(h.id), round(h.score, 5)) for h in col.search(query, **kwargs)]


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_an_embedded_collection_is_quantized_and_searches_rescore(
    embedder: Embedder, tmp_path: Path, kind: str
) -> None:
    """The shard holds the pooled vectors' quantized copy (in RAM), the originals on disk, the
    windows as they are; the fingerprint records it; every mode's top hits are those of an
    exact search (rescored on the originals), and a reopened handle knows it."""
    path = str(tmp_path / "store")
    with Collection("docs", embedder, path=path,
                    options=CollectionOptions(quantization=kind)) as col:  # type: ignore[arg-type]
        col.upsert(DOCS)
        assert col.quantization == kind and f"quantization={kind!r}" in repr(col)
        config = json.loads(next(tmp_path.rglob("edge_config.json")).read_text())
        pooled, windows = config["vectors"][""], config["vectors"]["windows"]
        assert pooled["quantization_config"] == CONFIG[kind] and pooled["on_disk"] is True
        assert "quantization_config" not in windows and windows["on_disk"] is True
        assert "quantization_config" not in config  # the pooled vector's alone
        assert list(tmp_path.rglob("quantized*")), "the quantized copy was built at this size"
        for query in QUERIES:
            for mode in ("dense", "hybrid"):
                assert ranked(col, query, k=5, mode=mode, prefetch=4) == \
                    ranked(col, query, k=5, mode=mode, prefetch=4, exact=True)
            assert [h.id for h in col.search(query, k=5, diversity=0.5)] == \
                [h.id for h in col.search(query, k=5, diversity=0.5, exact=True)]
        sparse = col.search("football", k=3, mode="sparse")  # no dense stage to rescore
        assert sparse[0].metadata["topic"] == "football"
        with pytest.raises(InputError, match="oversampling must be >= 1"):
            col.search("cats", oversampling=0.5)
    stored = json.loads(next(tmp_path.rglob("collection.json")).read_text())
    assert stored["metadata"][FINGERPRINT_KEY]["quantization"] == kind
    with Collection("docs", path=path) as reopened:
        assert reopened.quantization == kind
        assert ranked(reopened, "pets that purr", k=3, mode="dense") == \
            ranked(reopened, "pets that purr", k=3, mode="dense", exact=True)


@pytest.mark.parametrize("kind", ["int8", "binary"])
def test_pooled_scores_are_rescored_on_the_originals(
    embedder: Embedder, tmp_path: Path, kind: str
) -> None:
    """One vector a text (no windows to rank by MaxSim): the dense hits and their scores are
    the originals' (fp32), as an exact search finds them, from a quantized HNSW search."""
    options = CollectionOptions(quantization=kind, windows=None)  # type: ignore[arg-type]
    with Collection("docs", embedder, path=str(tmp_path / "s"), options=options) as col:
        col.upsert(DOCS)
        for query in QUERIES:
            assert ranked(col, query, k=5, mode="dense") == \
                ranked(col, query, k=5, mode="dense", exact=True)
            assert ranked(col, query, k=5, mode="dense", oversampling=3.0) == \
                ranked(col, query, k=5, mode="dense", exact=True)


@pytest.mark.parametrize("kind", ["local-path", "memory"])
def test_local_mode_records_quantization_and_searches_exactly(
    embedder: Embedder, tmp_path: Path, kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    """qdrant-client's local mode has no quantization: one line says so; the fingerprint still
    records it (a push to a server quantizes there); searches are exact."""
    path = engine_path(kind, tmp_path)
    with caplog.at_level(logging.WARNING):
        col = Collection("docs", embedder, path=path,
                         options=CollectionOptions(quantization="int8"))
    assert "local mode has no quantization" in caplog.text and "'docs'" in caplog.text
    with col:
        col.upsert(DOCS)
        assert col.quantization == "int8"
        assert ranked(col, "pets that purr", k=5) == ranked(col, "pets that purr", k=5,
                                                               exact=True)
        assert not [w for w in caplog.records if "search_params" in w.getMessage()]
    if kind == "local-path":
        with Collection("docs", path=path) as reopened:
            assert reopened.quantization == "int8"


def test_fingerprint_reads_old_collections_as_unquantized() -> None:
    model = {"model": "m", "dim": 384, "pooling": "mean", "normalize": True, "distance": "dot"}
    old = CollectionInfo(384, "dot", {FINGERPRINT_KEY: dict(model)})
    assert Fingerprint.read(old, "c", "here").quantization is None
    made = Fingerprint(model, quantization="binary")
    assert made.as_metadata()[FINGERPRINT_KEY] == {**model, "quantization": "binary"}
    again = Fingerprint.read(CollectionInfo(384, "dot", made.as_metadata()), "c", "here")
    assert again == made and again.model == model  # not part of the model's identity
    unknown = CollectionInfo(384, "dot", {FINGERPRINT_KEY: {**model, "quantization": "pq"}})
    with pytest.raises(CollectionMismatch, match="quantization 'pq'"):
        Fingerprint.read(unknown, "c", "here")
    with pytest.raises(InputError, match="quantization 'int4'"):
        CollectionOptions(quantization="int4")  # type: ignore[arg-type]


# --- what a server receives ---------------------------------------------------------------


class Server:
    """Records every request; answers as an empty server would, or, with ``existing``, with
    that collection's info (then the handle learns its quantization from the fingerprint)."""

    def __init__(self, existing: dict[str, Any] | None = None) -> None:
        self.sent: list[tuple[str, str, Any]] = []
        self.existing = existing

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path, method = request.url.path, request.method
        self.sent.append((method, path, body))
        result: Any = True
        if path.endswith("/exists"):
            result = {"exists": self.existing is not None}
        elif method == "GET" and path == "/collections/docs" and self.existing is not None:
            result = self.existing
        elif path.endswith("/points/count"):
            result = {"count": len(DOCS)}
        elif path.endswith("/points/query"):
            result = {"points": []}
        elif path.endswith("/points/scroll"):
            result = {"points": [], "next_page_offset": None}
        elif method == "POST" and path.endswith("/points"):
            result = []
        elif path.endswith(("/points", "/index")):
            result = {"operation_id": 1, "status": "completed"}
        return httpx.Response(200, json={"result": result, "status": "ok", "time": 0})

    def client(self) -> QdrantClient:
        return QdrantClient(url="http://127.0.0.1:6333", transport=httpx.MockTransport(self),
                            check_compatibility=False)

    def bodies(self, suffix: str) -> list[Any]:
        return [b for _, p, b in self.sent if p.endswith(suffix)]


def stages(body: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every stage of a query request: the request itself and its prefetches, nested."""
    yield body
    for each in body.get("prefetch") or []:
        yield from stages(each)


def dense_stages(body: dict[str, Any]) -> tuple[list[Any], list[Any]]:
    """(params of the stages that search the pooled vector, of those that search another)."""
    pooled, other = [], []
    for stage in stages(body):
        query = stage.get("query")
        if isinstance(query, dict) and "nearest" in query:  # MMR
            query = query["nearest"]
        searches_pooled = isinstance(query, list) and query and isinstance(query[0], float) \
            and stage.get("using") in (None, "")
        (pooled if searches_pooled else other).append(stage.get("params"))
    return pooled, other


def searched(col: Collection) -> None:
    for mode in ("dense", "hybrid", "sparse"):
        col.search("graphs", mode=mode)  # type: ignore[arg-type]
    col.search("graphs", diversity=0.5)


def test_a_server_receives_the_quantization_and_the_rescoring(embedder: Embedder) -> None:
    server = Server()
    col = Collection("docs", embedder, client=server.client(),
                     options=CollectionOptions(quantization="int8"))
    searched(col)
    col.search("graphs", mode="dense", exact=True)
    col.search("graphs", mode="dense", oversampling=3.0)
    [create] = [b for m, p, b in server.sent if m == "PUT" and p == "/collections/docs"]
    pooled = create["vectors"][""]
    assert pooled["quantization_config"] == CONFIG["int8"] and pooled["on_disk"] is True
    assert "quantization_config" not in create["vectors"]["windows"]
    assert create["vectors"]["windows"]["on_disk"] is True
    assert create.get("quantization_config") is None  # the pooled vector's alone
    assert create["metadata"][FINGERPRINT_KEY]["quantization"] == "int8"
    queries = server.bodies("/points/query")
    assert len(queries) == 6
    rescored = {"rescore": True, "oversampling": OVERSAMPLING["int8"]}
    for body in queries[:4]:  # dense, hybrid, sparse, MMR
        pooled_params, other = dense_stages(body)
        assert all(p["quantization"] == rescored for p in pooled_params), body
        assert not any(p and p.get("quantization") for p in other), body
    assert len(dense_stages(queries[2])[0]) == 0  # sparse: no pooled stage
    [exact] = dense_stages(queries[4])[0]
    assert exact["exact"] is True and exact["quantization"] == {"ignore": True}
    [wider] = dense_stages(queries[5])[0]
    assert wider["quantization"] == {"rescore": True, "oversampling": 3.0}


def test_a_handle_on_a_quantized_server_collection_rescores(
    embedder: Embedder, tmp_path: Path
) -> None:
    """Opened (not made) by this handle: the fingerprint, as the server returns it, says the
    collection is binary-quantized, so its searches send the rescoring."""
    local = QdrantClient(path=str(tmp_path / "shape"))  # a real collection info, as JSON
    Collection("docs", embedder, client=local, options=CollectionOptions(quantization="binary"))
    info = local.get_collection("docs").model_dump(mode="json", exclude_none=True)
    local.close()
    server = Server(existing=info)
    col = Collection("docs", embedder, client=server.client())
    assert col.quantization == "binary"
    searched(col)
    for body in server.bodies("/points/query"):
        for params in dense_stages(body)[0]:
            assert params["quantization"] == {"rescore": True,
                                              "oversampling": OVERSAMPLING["binary"]}


# --- kept by push and reembed ---------------------------------------------------------------


@pytest.fixture
def quantized(embedder: Embedder, tmp_path: Path) -> str:
    path = str(tmp_path / "edge")
    with Collection("docs", embedder, path=path,
                    options=CollectionOptions(quantization="int8")) as col:
        col.upsert(DOCS)
    return path


def test_push_makes_the_target_quantized_the_same_way(
    quantized: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    target = str(tmp_path / "target")
    with caplog.at_level(logging.WARNING):
        report = push(path=quantized, collection="docs", to_path=target)
    assert report.ok and report.quantization == "int8"
    assert "local mode has no quantization" in caplog.text
    with Collection("docs", path=quantized) as a, Collection("docs", path=target) as b:
        assert b.quantization == "int8"  # recorded: a push onward quantizes there
        here, there = ranked(a, "pets that purr", k=5), ranked(b, "pets that purr", k=5)
        assert [i for i, _ in here] == [i for i, _ in there]  # the same order, and the scores
        assert [s for _, s in here] == pytest.approx([s for _, s in there], abs=1e-4)  # rescored
    server = Server()
    monkeypatch.setattr("minilm_qdrant.engines.location.connect", lambda **_: server.client())
    report = push(path=quantized, collection="docs", url="http://qdrant.example:6333")
    assert report.created and report.quantization == "int8"
    [create] = [b for m, p, b in server.sent if m == "PUT" and p == "/collections/docs"]
    assert create["vectors"][""]["quantization_config"] == CONFIG["int8"]
    assert create["vectors"][""]["on_disk"] is True
    assert create["metadata"][FINGERPRINT_KEY]["quantization"] == "int8"


def test_reembed_keeps_the_quantization(quantized: str, embedder: Embedder) -> None:
    other = Embedder("all-MiniLM-L6-v2", backend="torch", pooling="cls")  # another fingerprint
    with Collection("docs", embedder, path=quantized) as col:
        report = col.reembed(other)
        new = Collection(report.target, engine=col.engine)
        assert new.quantization == "int8" and new.embedder.fingerprint == other.fingerprint
        assert ranked(new, "pets that purr", k=5, mode="dense") == \
            ranked(new, "pets that purr", k=5, mode="dense", exact=True)
    config = json.loads((Path(quantized) / report.target / "shard" / "edge_config.json")
                        .read_text())
    assert config["vectors"][""]["quantization_config"] == CONFIG["int8"]


# --- the command line ---------------------------------------------------------------------


def test_cli_index_quantization(embedder: Embedder, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in DOCS[:6]))
    invoke = index_in_process(embedder, monkeypatch, capsys, str(tmp_path / "store"))
    code, out, err = invoke(str(docs), "--quantization", "int8")
    assert code == 0, err
    assert "with all-MiniLM-L6-v2, vectors quantized int8 in" in out
    code, out, err = invoke(str(docs), "--quantization", "binary")  # it exists: kept int8
    assert code == 0 and "vectors quantized int8" in out
    assert "note: --quantization binary applies to a new collection; 'documents' keeps its " \
        "int8 quantization" in err
    code, out, err = invoke(str(docs), "-c", "plain")
    assert code == 0 and "quantized" not in out and "note" not in err
    code, out, err = invoke(str(docs), "--quantization", "pq")
    assert code == 2 and "--quantization must be one of none, int8, binary, not 'pq'" in err
