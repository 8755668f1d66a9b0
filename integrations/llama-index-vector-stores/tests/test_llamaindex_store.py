"""`MiniLMVectorStore` for LlamaIndex on every real engine: VectorStoreIndex and retrievers,
node lifecycle, MetadataFilters, query modes, and one collection shared with the core."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from llama_index.core import Document, StorageContext, VectorStoreIndex
from llama_index.core.schema import TextNode
from llama_index.core.vector_stores.types import (
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
    VectorStoreQuery,
    VectorStoreQueryMode,
)
from llama_index.vector_stores.minilm import MiniLMVectorStore

from minilm_qdrant import Collection
from minilm_qdrant import Document as CoreDocument
from minilm_qdrant.inputs import read_documents

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl"
QUESTION = "How should I set M and ef_search on an HNSW index?"
ROWS = [json.loads(line) for line in CORPUS.read_text(encoding="utf-8").splitlines()]


def _documents() -> list[Document]:
    return [Document(text=f"{r['title']}\n{r['text']}", id_=r["id"],
                     metadata={"title": r["title"], "track": r["track"], "day": r["day"]})
            for r in ROWS]


def _index(store: MiniLMVectorStore) -> VectorStoreIndex:
    return VectorStoreIndex.from_documents(
        _documents(), storage_context=StorageContext.from_defaults(vector_store=store),
        embed_model=store.embed_model)


def _query(store: MiniLMVectorStore, text: str = QUESTION, **kwargs: object) -> list[str]:
    result = store.query(VectorStoreQuery(query_str=text, **kwargs))  # type: ignore[arg-type]
    assert result.nodes is not None and result.ids is not None
    return [n.metadata.get("title", n.get_content()) for n in result.nodes]


def test_index_and_retriever(store: MiniLMVectorStore) -> None:
    index = _index(store)
    assert store.client.count() == len(ROWS)  # one node per (short) document
    nodes = index.as_retriever(similarity_top_k=3).retrieve(QUESTION)
    assert len(nodes) == 3 and nodes[0].node.metadata["title"].startswith("Tuning HNSW")
    assert nodes[0].node.ref_doc_id == "s02" and nodes[0].score == pytest.approx(
        store.client.search(QUESTION, k=1)[0].score)
    again = store.get_nodes(filters=MetadataFilters(filters=[]))
    assert store.add(again) == [n.node_id for n in again]  # the same node ids again:
    assert store.client.count() == len(ROWS)  # nothing duplicated


def test_one_collection_for_the_core_and_llamaindex(store: MiniLMVectorStore) -> None:
    core = store.client
    core.upsert(read_documents(CORPUS))  # as `minilm-qdrant index` writes it
    result = store.query(VectorStoreQuery(query_str=QUESTION, similarity_top_k=5))
    hits = core.search(QUESTION, k=5)
    assert result.ids == [str(h.id) for h in hits]
    assert result.similarities == [h.score for h in hits]
    assert result.nodes is not None and result.nodes[0].metadata["speaker"] == \
        hits[0].metadata["speaker"]
    # nodes added through LlamaIndex are found by the core with their text and metadata
    store.add([TextNode(text="Zygomorphic flowers and their pollinators.", id_="bot-1",
                        metadata={"track": "Botany"})])
    [hit] = core.search("zygomorphic", k=1, mode="sparse")
    assert (hit.id, hit.text, hit.metadata) == (
        "bot-1", "Zygomorphic flowers and their pollinators.", {"track": "Botany"})


def test_modes(store: MiniLMVectorStore) -> None:
    _index(store)
    assert _query(store)[0].startswith("Tuning HNSW")  # DEFAULT = hybrid here
    for mode in (VectorStoreQueryMode.HYBRID, VectorStoreQueryMode.SPARSE,
                 VectorStoreQueryMode.MMR):
        assert _query(store, mode=mode, similarity_top_k=3)[0].startswith("Tuning HNSW")
    plain = _query(store, similarity_top_k=4)
    diverse = _query(store, similarity_top_k=4, mode=VectorStoreQueryMode.MMR,
                     mmr_threshold=0.2)
    assert diverse != plain
    with pytest.raises(ValueError, match="query mode 'svm' is not supported"):
        _query(store, mode=VectorStoreQueryMode.SVM)


def _filtered(store: MiniLMVectorStore, *filters: MetadataFilter | MetadataFilters,
              condition: FilterCondition = FilterCondition.AND) -> set[str]:
    flt = MetadataFilters(filters=list(filters), condition=condition)
    return {r["id"] for r in ROWS} & {n.ref_doc_id or "" for n in store.get_nodes(filters=flt)}


def test_metadata_filters(store: MiniLMVectorStore) -> None:
    _index(store)
    ids = {r["id"]: r for r in ROWS}

    def where(pred: object) -> set[str]:
        return {i for i, r in ids.items() if pred(r)}  # type: ignore[operator]

    f = MetadataFilter
    assert _filtered(store, f(key="day", value=2)) == where(lambda r: r["day"] == 2)
    assert _filtered(store, f(key="day", value=2, operator=FilterOperator.NE)) == where(
        lambda r: r["day"] != 2)
    assert _filtered(store, f(key="day", value=2, operator=FilterOperator.GTE)) == where(
        lambda r: r["day"] >= 2)
    assert _filtered(store, f(key="day", value=2, operator=FilterOperator.LT)) == where(
        lambda r: r["day"] < 2)
    tracks = ["Retrieval", "Keynote"]
    assert _filtered(store, f(key="track", value=tracks, operator=FilterOperator.IN)) == where(
        lambda r: r["track"] in tracks)
    assert _filtered(store, f(key="track", value=tracks, operator=FilterOperator.NIN)) == where(
        lambda r: r["track"] not in tracks)
    assert _filtered(store, f(key="title", value="HNSW", operator=FilterOperator.TEXT_MATCH)
                     ) == where(lambda r: "HNSW" in r["title"])
    assert _filtered(store, f(key="day", value=1), f(key="track", value="Retrieval"),
                     condition=FilterCondition.OR) == where(
        lambda r: r["day"] == 1 or r["track"] == "Retrieval")
    assert _filtered(store, f(key="day", value=1), condition=FilterCondition.NOT) == where(
        lambda r: r["day"] != 1)
    nested = MetadataFilters(filters=[f(key="day", value=1), f(key="day", value=3)],
                             condition=FilterCondition.OR)
    assert _filtered(store, f(key="track", value="Retrieval"), nested) == where(
        lambda r: r["track"] == "Retrieval" and r["day"] in (1, 3))
    retriever = _index(store).as_retriever(similarity_top_k=10, filters=MetadataFilters(
        filters=[f(key="track", value="Retrieval")]))
    assert {n.node.metadata["track"] for n in retriever.retrieve(QUESTION)} == {"Retrieval"}


def test_node_lifecycle(store: MiniLMVectorStore) -> None:
    nodes = [TextNode(text=f"Passage {i} of a guide to sourdough.", id_=f"n{i}",
                      metadata={"part": i},
                      relationships=_source("guide-a" if i < 3 else "guide-b"))
             for i in range(6)]
    assert store.add(nodes) == [n.node_id for n in nodes]
    got = store.get_nodes(node_ids=["n4", "n1", "missing"])
    assert [n.node_id for n in got] == ["n4", "n1"]
    assert got[0].ref_doc_id == "guide-b" and got[0].metadata == {"part": 4}
    assert got[0].get_content() == "Passage 4 of a guide to sourdough."
    store.delete("guide-a")
    assert sorted(n.node_id for n in store.get_nodes(
        filters=MetadataFilters(filters=[]))) == ["n3", "n4", "n5"]
    store.delete_nodes(node_ids=["n3"])
    store.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="part", value=5)]))
    assert [n.node_id for n in store.get_nodes(filters=MetadataFilters(filters=[]))] == ["n4"]
    store.clear()
    assert store.client.count() == 0 and store.client.default_mode == "hybrid"


def _source(doc_id: str) -> dict:  # type: ignore[type-arg]
    from llama_index.core.schema import NodeRelationship, RelatedNodeInfo

    return {NodeRelationship.SOURCE: RelatedNodeInfo(node_id=doc_id)}


def test_async(store: MiniLMVectorStore) -> None:
    async def run() -> list[str]:
        await store.async_add([TextNode(text="Async retrieval with asyncio.", id_="a1")])
        result = await store.aquery(VectorStoreQuery(query_str="asyncio", similarity_top_k=1))
        return result.ids or []

    assert asyncio.run(run()) == ["a1"]


def test_core_documents_without_extra_become_text_nodes(store: MiniLMVectorStore) -> None:
    store.client.upsert([CoreDocument("Written by the CLI.", {"k": "v"}, "cli-1")])
    [node] = store.get_nodes(node_ids=["cli-1"])
    assert isinstance(node, TextNode)
    assert (node.node_id, node.get_content(), node.metadata) == (
        "cli-1", "Written by the CLI.", {"k": "v"})


def test_opens_by_path_with_the_collections_model(tmp_path: Path) -> None:
    path = str(tmp_path / "edge")
    first = MiniLMVectorStore("notes", model_name="all-MiniLM-L6-v2", path=path)
    first.add([TextNode(text="HNSW graphs trade memory for recall.", id_="x")])
    first.close()
    again = MiniLMVectorStore("notes", path=path)  # no model: the collection's own
    assert again.client.embedder.spec.name == "all-MiniLM-L6-v2"
    assert again.query(VectorStoreQuery(query_str="HNSW", similarity_top_k=1)).ids == ["x"]
    again.close()
    assert not (Path(path) / "meta.json").exists()  # still an Edge store for the CLI
    with Collection("notes", path=path) as col:
        assert col.count() == 1


def test_a_tenant_store_sees_and_changes_only_its_own_nodes(location: str) -> None:
    """Two tenants index the same documents (same node and document ids): each one's index,
    retriever, queries, get_nodes and deletes see and change its own nodes only."""
    acme = MiniLMVectorStore("talks", model_name="all-MiniLM-L6-v2", path=location,
                             tenant="acme")
    beta = MiniLMVectorStore(collection=acme.client, tenant="beta")
    _index(acme)
    _index(beta)
    assert acme.client.count() == beta.client.count() == len(ROWS)
    beta.add([TextNode(text="Zygomorphic flowers and their pollinators.", id_="s02",
                       metadata={"track": "Botany"})])  # a node id acme might guess
    nodes = VectorStoreIndex.from_vector_store(acme, embed_model=acme.embed_model) \
        .as_retriever(similarity_top_k=3).retrieve(QUESTION)
    assert nodes[0].node.ref_doc_id == "s02" and nodes[0].node.metadata["title"].startswith(
        "Tuning HNSW")
    assert _query(beta, "zygomorphic pollinators", similarity_top_k=1) == [
        "Zygomorphic flowers and their pollinators."]
    assert "Zygomorphic" not in " ".join(_query(acme, "zygomorphic pollinators"))
    acme.delete("s02")  # by document id: acme's s02 only
    acme.delete_nodes(filters=MetadataFilters(filters=[MetadataFilter(key="day", value=1)]))
    left = acme.client.count()
    assert left < len(ROWS) - 1 and beta.client.count() == len(ROWS) + 1  # beta: all kept
    assert acme.get_nodes(node_ids=["s02"]) == []
    top = VectorStoreIndex.from_vector_store(beta, embed_model=beta.embed_model) \
        .as_retriever(similarity_top_k=1).retrieve(QUESTION)
    assert top[0].node.ref_doc_id == "s02"
    assert [n.get_content() for n in beta.get_nodes(node_ids=["s02"])] == [
        "Zygomorphic flowers and their pollinators."]
    assert all(n.metadata.get("day") != 1 for n in acme.get_nodes())
    acme.close()
