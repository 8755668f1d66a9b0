"""`MiniLMVectorStore` over the core `Collection` on every real engine: one collection for the
CLI and LangChain, deterministic ids, hybrid/dense/sparse modes, MMR in the engine, filters,
relevance scores; and `MiniLMEmbeddings` inside a plain langchain-qdrant store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.documents import Document as LCDocument
from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore
from langchain_qdrant import QdrantVectorStore, RetrievalMode
from qdrant_client import models

from minilm_qdrant import Collection, CollectionMismatch, CollectionNotFound, Document, Embedder
from minilm_qdrant.inputs import read_documents

CORPUS = Path(__file__).resolve().parents[3] / "examples" / "conference.jsonl"
QUESTION = "How should I set M and ef_search on an HNSW index?"
ANSWER = "s02"  # "Tuning HNSW Graphs for Billion-Scale Vector Indexes"




@pytest.fixture
def talks(location: str, embeddings: MiniLMEmbeddings) -> Iterator[MiniLMVectorStore]:
    """The conference corpus as `minilm-qdrant index` writes it, opened from LangChain."""
    core = Collection("talks", embeddings.embedder, path=location)
    assert core.upsert(read_documents(CORPUS)).written == 36
    store = MiniLMVectorStore(collection=core)
    yield store
    store.close()


def test_same_hits_and_scores_as_the_core(talks: MiniLMVectorStore) -> None:
    ours = talks.similarity_search_with_score(QUESTION, k=5)
    core = talks.collection.search(QUESTION, k=5)  # what `minilm-qdrant search` runs
    assert [(d.id, s) for d, s in ours] == [(str(h.id), h.score) for h in core]
    assert ours[0][0].id == ANSWER and ours[0][0].metadata["track"] == "Retrieval"
    assert talks.mode == "hybrid"
    retrieved = talks.as_retriever(search_kwargs={"k": 3}).invoke(QUESTION)
    assert [d.id for d in retrieved] == [d.id for d, _ in ours[:3]]


@pytest.mark.parametrize("mode", [RetrievalMode.HYBRID, RetrievalMode.DENSE, "sparse"])
def test_relevance_scores_grow_with_similarity(
    talks: MiniLMVectorStore, mode: RetrievalMode | str
) -> None:
    store = MiniLMVectorStore(collection=talks.collection, retrieval_mode=mode)
    raw = store.similarity_search_with_score(QUESTION, k=5)
    scored = store.similarity_search_with_relevance_scores(QUESTION, k=5)
    assert [d.id for d, _ in scored] == [d.id for d, _ in raw]
    relevance = [r for _, r in scored]
    assert relevance == sorted(relevance, reverse=True) and all(0 <= r <= 1 for r in relevance)
    assert scored[0][0].id == ANSWER
    kept = store.similarity_search_with_relevance_scores(QUESTION, k=5,
                                                         score_threshold=relevance[1])
    assert [d.id for d, _ in kept] == [d.id for d, _ in scored[:2]]  # keeps the best


def test_mmr_runs_in_the_engine(talks: MiniLMVectorStore) -> None:
    plain = [d.id for d in talks.similarity_search(QUESTION, k=4, prefetch=20)]  # = fetch_k
    assert [d.id for d in talks.max_marginal_relevance_search(
        QUESTION, k=4, fetch_k=20, lambda_mult=1.0)] == plain
    diverse = [d.id for d in talks.max_marginal_relevance_search(
        QUESTION, k=4, fetch_k=20, lambda_mult=0.1)]
    assert diverse[0] == plain[0] and diverse != plain
    vector = talks.embeddings.embed_query(QUESTION)
    assert talks.max_marginal_relevance_search_by_vector(vector, k=2)[0].id == ANSWER
    assert talks.similarity_search_by_vector(vector, k=1)[0].id == ANSWER


def test_filters_dict_and_qdrant(talks: MiniLMVectorStore) -> None:
    by_dict = talks.similarity_search(QUESTION, k=10, filter={"day": 2})
    assert by_dict and {d.metadata["day"] for d in by_dict} == {2}
    either = talks.similarity_search(QUESTION, k=40, filter={"track": ["Keynote", "Security"]})
    assert {d.metadata["track"] for d in either} <= {"Keynote", "Security"} and either
    flt = models.Filter(must_not=[models.FieldCondition(
        key="metadata.track", match=models.MatchValue(value="Retrieval"))])
    assert "Retrieval" not in {d.metadata["track"] for d in
                               talks.similarity_search(QUESTION, k=10, filter=flt)}


def test_writes_are_deterministic_and_streamed(location: str,
                                                embeddings: MiniLMEmbeddings) -> None:
    store = MiniLMVectorStore(embeddings, "notes", path=location)
    texts = ["Qdrant stores payloads next to vectors.", "A croissant is laminated dough.",
             "HNSW is a graph index."]
    first = store.add_texts(t for t in texts)  # a generator is written, not dropped
    assert store.add_texts(texts) == first and store.collection.count() == 3  # no duplicates
    ids = store.add_documents([LCDocument("Sourdough needs a long proof.", id="s1",
                                          metadata={"n": 1})])
    assert ids == ["s1"] and store.get_by_ids(["s1", "nope"])[0].metadata == {"n": 1}
    [hit] = store.collection.search("vector database payload", k=1)  # the core sees it
    assert (hit.text, str(hit.id)) == (texts[0], first[0])
    assert store.delete(["s1", "nope"]) is True and store.collection.count() == 3
    assert store.delete(filter=models.Filter()) and store.collection.count() == 0
    with pytest.raises(ValueError, match="3 texts but 2 metadatas"):
        store.add_texts(texts, metadatas=[{}, {}])
    store.close()


def test_from_texts_on_the_embedded_store_leaves_it_readable_by_the_cli(
    tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    path = str(tmp_path / "qdrant_data")
    store = MiniLMVectorStore.from_texts(["HNSW graphs trade memory for recall."], embeddings,
                                         metadatas=[{"t": 1}], ids=["h"], path=path,
                                         collection_name="docs")
    store.close()
    assert not (Path(path) / "meta.json").exists()  # still an Edge store
    with Collection("docs", path=path) as col:  # the model from the fingerprint
        assert col.get(["h"])[0].metadata == {"t": 1}


def test_refusals(tmp_path: Path, embeddings: MiniLMEmbeddings) -> None:
    path = str(tmp_path / "s")
    with Collection("other", Embedder("all-MiniLM-L6-v2", pooling="cls"), path=path) as col:
        col.upsert([Document("stored: the collection keeps its model", id="a")])
    with pytest.raises(CollectionMismatch, match="pooling=cls"):
        MiniLMVectorStore(embeddings, "other", path=path)
    with pytest.raises(CollectionNotFound):
        MiniLMVectorStore(embeddings, "missing", path=path, create=False)
    with pytest.raises(TypeError, match="needs MiniLMEmbeddings"):
        MiniLMVectorStore.from_texts(["x"], object(), path=path)  # type: ignore[arg-type]


def test_plain_qdrant_vector_store_with_minilm_embeddings(embeddings: MiniLMEmbeddings) -> None:
    store = QdrantVectorStore.from_texts(
        ["HNSW graphs trade memory for recall.", "Sourdough needs a long, cold proof."],
        embeddings, metadatas=[{"topic": "search"}, {"topic": "baking"}],
        location=":memory:", collection_name="plain", distance=models.Distance.DOT,
    )
    [hit] = store.similarity_search("vector index tuning", k=1)
    assert hit.metadata["topic"] == "search"
