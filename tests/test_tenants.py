"""Tenants, tested as an attacker would: many tenants with overlapping ids and near-identical
texts; generated queries, modes, filters built to escape (``should`` on another tenant,
``must_not`` on one's own, the reserved key in metadata or a filter, nested and empty filters,
other tenants' point ids), and ids of other tenants for get / delete / set_metadata. After
every case nothing of another tenant was returned, counted, changed or deleted. On the
embedded store, qdrant-client local mode and, through the transport, what a server receives.

``TENANT_CASES`` sets the generated cases per engine (CI: 400; the figure: 10000).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from faults import record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from qdrant_client import QdrantClient, models

from minilm_qdrant import (
    Collection,
    CollectionMismatch,
    CollectionOptions,
    Document,
    Embedder,
    InputError,
)
from minilm_qdrant.tenancy import TENANT_KEY, Scope

TENANTS = ["acme", "beta", "gamma"]
IDS: list[str | int] = ["doc-1", "doc-2", "doc-3", 7]
TEXTS = ["HNSW graphs trade memory for recall", "Sourdough needs a long cold proof",
         "Qdrant filters points by payload", "Tenants share one collection"]
QUERIES = ["graph memory recall", "bread proofing", "payload filter", "shared collection"]
CASES = int(os.environ.get("TENANT_CASES", "400"))
ENGINES = ["edge", "local-path"]


def text_of(tenant: str, i: int) -> str:
    """Near-identical across tenants; the last word says whose it is."""
    return f"{TEXTS[i]} ({tenant})"


def owner(text: str) -> str:
    return text.rpartition("(")[2].rstrip(")")


def tenant_is(name: str) -> models.FieldCondition:
    return models.FieldCondition(key=TENANT_KEY, match=models.MatchValue(value=name))


# --- what an attacker sends ------------------------------------------------------------------

LEAF = st.one_of(
    st.sampled_from(TENANTS).map(tenant_is),  # the reserved key, any tenant
    st.sampled_from(TENANTS).map(lambda t: models.FieldCondition(
        key=f"metadata.{TENANT_KEY}", match=models.MatchValue(value=t))),
    st.sampled_from(TENANTS).map(lambda t: models.FieldCondition(
        key="metadata.label", match=models.MatchValue(value=t))),
    st.lists(st.sampled_from(TENANTS), min_size=1, max_size=3).map(
        lambda ts: models.FieldCondition(key=TENANT_KEY, match=models.MatchAny(any=ts))),
    st.lists(st.tuples(st.sampled_from(TENANTS), st.sampled_from(IDS)), min_size=1,
             max_size=4).map(lambda pairs: models.HasIdCondition(
                 has_id=[Scope(True, t).id_of(i) for t, i in pairs])),  # others' point ids
)


def _filter(parts: Any) -> models.Filter:
    must, should, must_not = parts
    return models.Filter(must=must or None, should=should or None, must_not=must_not or None)


FILTERS = st.recursive(
    st.one_of(st.just(models.Filter()), st.tuples(*[st.lists(LEAF, max_size=2)] * 3).map(_filter)),
    lambda inner: st.tuples(*[st.lists(st.one_of(LEAF, inner), max_size=2)] * 3).map(_filter),
    max_leaves=6,
)
MAYBE_FILTER = st.one_of(st.none(), FILTERS)
WHERE = st.one_of(st.lists(st.sampled_from([*IDS, "doc-9"]), max_size=4), FILTERS)
OPS = st.one_of(
    st.tuples(st.just("search"), st.integers(0, len(QUERIES) - 1),
              st.sampled_from(["dense", "sparse", "hybrid"]), MAYBE_FILTER,
              st.sampled_from([0.0, 0.5]), st.booleans()),
    st.tuples(st.just("count"), MAYBE_FILTER),
    st.tuples(st.just("find"), MAYBE_FILTER),
    st.tuples(st.just("get"), st.lists(st.sampled_from([*IDS, "doc-9"]), max_size=5)),
    st.tuples(st.just("delete"), WHERE),
    st.tuples(st.just("set_metadata"), WHERE, st.fixed_dictionaries(
        {}, optional={TENANT_KEY: st.sampled_from(TENANTS), "label": st.sampled_from(TENANTS)})),
    st.tuples(st.just("upsert"), st.sampled_from(IDS), st.integers(0, len(TEXTS) - 1),
              st.sampled_from(TENANTS)),
)


class World:
    """One tenanted collection, every tenant's handle and an administrator's."""

    def __init__(self, embedder: Embedder, path: str) -> None:
        self.embedder = embedder
        self.col = Collection("shared", embedder, path=path, tenant=TENANTS[0])
        self.handles = {t: self.col.tenant(t) for t in TENANTS}
        self.admin = Collection("shared", engine=self.col.engine, all_tenants=True)
        self.dense = {q: embedder.embed_query(q) for q in QUERIES}
        assert self.col.sparse is not None
        self.sparse = {q: self.col.sparse.encode_query(q) for q in QUERIES}
        self.vectors = {text_of(t, i): v for t in TENANTS for i, v in
                        enumerate(embedder.embed_documents([text_of(t, i) for i in
                                                            range(len(TEXTS))]))}
        self.cases = 0
        for tenant in TENANTS:
            self.fill(tenant)

    def fill(self, tenant: str) -> None:
        docs = [Document(text_of(tenant, i), {"label": tenant, "n": i}, id=IDS[i])
                for i in range(len(TEXTS))]
        self.handles[tenant].upsert(docs, vectors={d.id: self.vectors[d.text] for d in docs
                                                   if d.id is not None}, optimize=False)

    def snapshot(self) -> dict[str, tuple[Any, ...]]:
        """Every stored point: its tenant, text, id and metadata (read past every scope)."""
        out = {}
        for page in self.col.engine.scroll("shared", 256, False):
            for p in page:
                out[p.id] = (p.payload.get(TENANT_KEY), p.payload["text"], p.payload["doc_id"],
                             json.dumps(p.payload["metadata"], sort_keys=True))
        return out

    def run(self, me: str, op: tuple[Any, ...]) -> None:
        mine = self.handles[me]
        before = self.snapshot()
        theirs_before = {k: v for k, v in before.items() if v[0] != me}
        kind = op[0]
        if kind == "search":
            _, q, mode, flt, diversity, exact = op
            query = QUERIES[q]
            dense = self.dense[query] if mode != "sparse" or diversity else None
            sparse = self.sparse[query] if mode != "dense" else None
            hits = mine.search_vector(dense, 10, sparse=sparse, mode=mode, query_filter=flt,
                                      diversity=diversity, exact=exact)
            assert {owner(h.text) for h in hits} <= {me}, (op, [h.text for h in hits])
        elif kind == "count":
            n = mine.count(op[1])
            scoped = models.Filter(must=[tenant_is(me)] + ([op[1]] if op[1] else []))
            assert n == self.admin.count(scoped) <= sum(v[0] == me for v in before.values())
        elif kind == "find":
            found = mine.find(op[1])
            assert {owner(d.text) for d in found} <= {me}, op
            assert len(found) == mine.count(op[1])
        elif kind == "get":
            got = mine.get(op[1])
            assert {owner(d.text) for d in got} <= {me}, op
        elif kind == "delete":
            mine.delete(op[1])
        elif kind == "set_metadata":
            mine.set_metadata(op[1], op[2])
        elif kind == "upsert":  # an id another tenant holds, a label naming another tenant
            _, doc_id, i, other = op
            text = text_of(me, i)
            mine.upsert([Document(text, {TENANT_KEY: other, "label": other}, id=doc_id)],
                        vectors={doc_id: self.vectors[text]}, optimize=False)
            [doc] = mine.get([doc_id])
            assert doc.text == text and doc.metadata[TENANT_KEY] == other
            assert self.handles[other].get([doc_id]) == [] or other == me or \
                owner(self.handles[other].get([doc_id])[0].text) == other
        after = self.snapshot()
        assert {k: v for k, v in after.items() if v[0] != me} == theirs_before, op
        assert all(owner(v[1]) == v[0] for v in after.values()), op  # stamps never move
        self.cases += 1
        if sum(v[0] == me for v in after.values()) < 2:
            self.fill(me)


@pytest.fixture(scope="module", params=ENGINES)
def world(request: pytest.FixtureRequest, embedder: Embedder,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    path = str(tmp_path_factory.mktemp(request.param) / "store")
    if request.param == "local-path":
        QdrantClient(path=path).close()
    w = World(embedder, path)
    yield w
    record(f"{CASES} generated attacker cases on {request.param} (3 tenants, shared ids, "
           "escaping filters, others' ids)",
           "nothing of another tenant returned, counted, changed or deleted", w.cases, w.cases)
    w.col.close()


@settings(max_examples=CASES, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(me=st.sampled_from(TENANTS), op=OPS)
def test_no_tenant_ever_reaches_another(world: World, me: str, op: tuple[Any, ...]) -> None:
    world.run(me, op)


# --- the shape of a tenanted collection -------------------------------------------------------


@pytest.mark.parametrize("kind", ENGINES)
def test_tenanted_collection_index_fingerprint_and_refusals(
        kind: str, embedder: Embedder, tmp_path: Path) -> None:
    path = str(tmp_path / "store")
    if kind == "local-path":
        QdrantClient(path=path).close()
    with Collection("t", embedder, path=path, tenant="acme") as col:
        col.upsert([Document("one", id=1)])
        if kind == "edge":  # local mode keeps no payload index (a server does: see below)
            assert col.engine.payload_indexes("t") == {TENANT_KEY: "tenant"}
        with pytest.raises(CollectionMismatch, match="is tenanted: open it for one tenant"):
            Collection("t", engine=col.engine)
        with pytest.raises(InputError, match="writes for none"):
            Collection("t", engine=col.engine, all_tenants=True).upsert([Document("x")])
        with pytest.raises(InputError, match="non-empty string"):
            col.tenant("")
        with pytest.raises(InputError, match="not both"):
            Collection("t", engine=col.engine, tenant="a", all_tenants=True)
        assert "tenant='acme'" in repr(col)
        beta = col.tenant("beta")
        beta.close()  # a view leaves the store to its handle
        assert col.count() == 1 and beta.count() == 0
    with Collection("plain", embedder, path=path) as plain:
        plain.upsert([Document("two", id=2)])
        with pytest.raises(CollectionMismatch, match="is not tenanted"):
            Collection("plain", engine=plain.engine, tenant="acme")
        with pytest.raises(CollectionMismatch, match="is not tenanted"):
            plain.tenant("acme")
        assert Collection("plain", engine=plain.engine, all_tenants=True).count() == 1
    record(f"tenanted collection opened without a tenant ({kind})",
           "one line: open it with tenant=NAME or all_tenants=True; untenanted with a tenant "
           "refused", 0, 0)


def test_a_server_receives_the_tenant_in_every_stage(embedder: Embedder) -> None:
    """What a server would receive (the transport records each request): the tenant index
    with the collection, stamped payloads, namespaced ids, and the tenant condition at the
    top of every filter of every stage of every request."""
    sent: list[tuple[str, str, Any]] = []

    def server(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        path, method = request.url.path, request.method
        sent.append((method, path, body))
        result: Any = True
        if path.endswith("/exists"):
            result = {"exists": False}
        elif path.endswith("/points/count"):
            result = {"count": 1}
        elif path.endswith("/points/query"):
            result = {"points": []}
        elif path.endswith("/points/scroll"):
            result = {"points": [], "next_page_offset": None}
        elif method == "POST" and path.endswith("/points"):
            result = []
        elif path.endswith(("/points", "/index", "/delete", "/payload")):
            result = {"operation_id": 1, "status": "completed"}
        return httpx.Response(200, json={"result": result, "status": "ok", "time": 0})

    client = QdrantClient(url="http://127.0.0.1:6333", transport=httpx.MockTransport(server),
                          check_compatibility=False)
    col = Collection("docs", embedder, client=client, tenant="acme")
    escape = models.Filter(should=[tenant_is("beta")], must_not=[tenant_is("acme")])
    col.upsert([Document("HNSW graphs", {TENANT_KEY: "beta"}, id="doc-1")], optimize=False)
    for mode in ("dense", "sparse", "hybrid"):
        col.search("graphs", mode=mode, query_filter=escape)  # type: ignore[arg-type]
    col.search("graphs", diversity=0.5, query_filter=escape)
    col.search("graphs", exact=True)
    col.count(escape)
    col.find(escape)
    col.delete(escape)
    col.set_metadata(escape, {"x": 1})

    [create] = [b for m, p, b in sent if m == "PUT" and p == "/collections/docs"]
    assert create["hnsw_config"] == {"m": 0, "payload_m": 16}  # a graph per tenant
    index = [b for m, p, b in sent if p.endswith("/index")]
    assert index == [{"field_name": TENANT_KEY, "field_schema": {
        "type": "keyword", "is_tenant": True}}]
    [upsert] = [b for m, p, b in sent if m == "PUT" and p.endswith("/points")]
    assert upsert["batch"]["ids"] == [Scope(True, "acme").id_of("doc-1")]
    assert upsert["batch"]["payloads"][0][TENANT_KEY] == "acme"

    def filters(node: Any) -> Iterator[Any]:
        if isinstance(node, dict):
            for key, value in node.items():
                if key in ("filter", "query_filter") and value is not None:
                    yield value
                yield from filters(value)
        elif isinstance(node, list):
            for value in node:
                yield from filters(value)

    confined = {"key": TENANT_KEY, "match": {"value": "acme"}}
    requests = [(p, b) for m, p, b in sent if b and any(
        p.endswith(e) for e in ("/query", "/count", "/scroll", "/delete", "/payload"))]
    assert len(requests) >= 10
    stages = 0
    for path, body in requests:
        found = list(filters(body))
        assert found, (path, body)  # no request without the tenant's filter
        for flt in found:
            assert any(c.get("key") == TENANT_KEY and c.get("match") == {"value": "acme"}
                       for c in flt["must"]), (path, flt)
            assert confined in flt["must"]
            stages += 1
    record("what a server receives from a tenant's handle (transport): upsert, dense/sparse/"
           "hybrid/MMR/exact search, count, find, delete and set_metadata by an escaping filter",
           f"tenant index (is_tenant) created; ids namespaced, payload stamped; the tenant in "
           f"must of all {stages} filters of {len(requests)} requests", stages, stages)


def test_overlapping_ids_and_reserved_key(embedder: Embedder, tmp_path: Path) -> None:
    with Collection("t", embedder, path=str(tmp_path / "s"), tenant="acme") as acme:
        beta = acme.tenant("beta")
        acme.upsert([Document("acme's doc", {TENANT_KEY: "beta"}, id="doc-1")])
        beta.upsert([Document("beta's doc", id="doc-1")])
        assert [d.text for d in acme.get(["doc-1"])] == ["acme's doc"]
        assert [d.text for d in beta.get(["doc-1"])] == ["beta's doc"]
        assert acme.get(["doc-1"])[0].metadata == {TENANT_KEY: "beta"}  # kept, not obeyed
        assert acme.delete(["doc-1"]) == 1
        assert [d.text for d in beta.get(["doc-1"])] == ["beta's doc"]
        assert beta.set_metadata(models.Filter(), {"seen": True}) == 1
        assert acme.count() == 0 and beta.count() == 1


def test_reembed_and_push_keep_every_tenant(embedder: Embedder, tmp_path: Path) -> None:
    from minilm_qdrant.push import push

    path = str(tmp_path / "s")
    made_before_windows = CollectionOptions(windows=None)  # what reembed moves, same model
    with Collection("t", embedder, path=path, tenant="acme", options=made_before_windows
                    ) as acme:
        acme.upsert([Document("acme one", id="doc-1"), Document("acme two", id="doc-2")])
        acme.tenant("beta").upsert([Document("beta one", id="doc-1")])
        with pytest.raises(InputError, match="all_tenants=True"):
            acme.reembed(embedder, to_collection="t2")
        admin = Collection("t", engine=acme.engine, all_tenants=True)
        report = admin.reembed(embedder, to_collection="t2")
        assert report.points == 3
        moved = Collection("t2", engine=acme.engine, tenant="beta")
        assert [d.text for d in moved.get(["doc-1"])] == ["beta one"]
        assert moved.tenant("acme").count() == 2
        for name in ("t", "t2"):  # made and reembedded: a graph per tenant, none global
            options = acme.engine._meta(name)["options"]  # type: ignore[attr-defined]
            assert (options["hnsw_m"], options["hnsw_payload_m"]) == (0, 16)
    out = str(tmp_path / "copy")
    pushed = push(path=path, collection="t", to_path=out)
    assert pushed.copied == 3 and pushed.indexes == [TENANT_KEY]  # the tenant index travels
    with Collection("t", path=out, tenant="beta") as copy:
        assert [d.text for d in copy.find()] == ["beta one"]


def test_cli_tenant_options(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from minilm_qdrant.cli import app

    data = tmp_path / "a.jsonl"
    data.write_text('{"id": "d1", "text": "HNSW graphs trade memory for recall"}\n')
    store = str(tmp_path / "s")
    run = CliRunner().invoke
    common = ["--path", store, "--collection", "t"]
    for tenant in ("acme", "beta"):
        r = run(app, ["index", str(data), *common, "--tenant", tenant,
                      "--model", "all-MiniLM-L6-v2"])
        assert r.exit_code == 0, r.output
    r = run(app, ["search", "graphs", *common])
    assert isinstance(r.exception, CollectionMismatch) and "is tenanted" in str(r.exception)
    r = run(app, ["delete", "d1", *common, "--tenant", "acme"])
    assert r.exit_code == 0 and "Deleted 1 documents" in r.output and "0 left" in r.output
    r = run(app, ["search", "graphs", *common, "--tenant", "beta", "--json"])
    assert r.exit_code == 0 and [h["id"] for h in json.loads(r.output)] == ["d1"]
    r = run(app, ["search", "graphs", *common, "--tenant", "acme", "--json"])
    assert r.exit_code == 0 and json.loads(r.output) == []


def test_tenant_vectors_match_an_untenanted_collection(embedder: Embedder) -> None:
    """A tenant's search scores what a collection holding only its documents scores."""
    texts = [f"{t} number {i}" for i, t in enumerate(TEXTS)]
    with Collection("t", embedder, tenant="acme") as acme, Collection("u", embedder) as alone:
        acme.upsert([Document(t, id=i) for i, t in enumerate(texts)])
        acme.tenant("beta").upsert([Document(t + " (beta)", id=i) for i, t in enumerate(texts)])
        alone.upsert([Document(t, id=i) for i, t in enumerate(texts)])
        for q in QUERIES:
            a = [(h.id, round(h.score, 4)) for h in acme.search(q, mode="dense")]
            b = [(h.id, round(h.score, 4)) for h in alone.search(q, mode="dense")]
            assert a == b
            assert np.isfinite([h.score for h in acme.search(q)]).all()


def test_eval_as_a_tenant_scores_only_its_own_corpus(tmp_path: Path) -> None:
    """`eval --tenant`: a neighbour holding the same ids with their texts shuffled (a leak
    would change every ranking) leaves the tenant's figures those of a store of its own."""
    from test_eval import CORPUS, cli, write_beir

    real = write_beir(tmp_path / "real")
    shuffled = [{**doc, "text": CORPUS[(i + 1) % len(CORPUS)]["text"]}
                for i, doc in enumerate(CORPUS)]
    noise = write_beir(tmp_path / "noise", corpus="".join(json.dumps(d) + "\n" for d in shuffled))
    store = str(tmp_path / "s")
    shared = ["--collection", "c", "--path", store, "--model", "all-MiniLM-L6-v2", "--json",
              "--mode", "dense"]

    def ndcg(*args: str) -> float:
        out = cli("eval", *args, cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        return float(json.loads(out.stdout)["ndcg@10"])

    ndcg(str(noise), *shared, "--tenant", "noise")
    alone = ndcg(str(real), "--model", "all-MiniLM-L6-v2", "--json", "--mode", "dense")
    assert ndcg(str(real), *shared, "--tenant", "acme") == alone > 0
