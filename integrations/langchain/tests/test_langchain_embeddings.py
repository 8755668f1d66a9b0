"""`MiniLMEmbeddings` translates to the core embedder: same vectors, same paths, one load."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from langchain_core.embeddings import Embeddings
from langchain_minilm import MiniLMEmbeddings
from pydantic import ValidationError

from minilm_qdrant import DEFAULT_MODEL, Embedder, ModelNotFound
from minilm_qdrant.backends import load_backend

QUERY = "How do I tune HNSW parameters for recall?"
DOCS = ["HNSW graphs trade memory for recall.", "Sourdough needs a long, cold proof."]


def _cosine(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_query_equals_core_query_vector(embeddings: MiniLMEmbeddings) -> None:
    core = Embedder("all-MiniLM-L6-v2")
    ours = embeddings.embed_query(QUERY)
    assert _cosine(ours, core.embed_query(QUERY)) >= 0.99999
    assert len(ours) == core.dim == 384
    assert all(type(x) is float for x in ours)


def test_documents_use_the_core_document_path(embeddings: MiniLMEmbeddings) -> None:
    core = Embedder("all-MiniLM-L6-v2").embed_documents(DOCS)
    ours = embeddings.embed_documents(DOCS)
    assert len(ours) == len(DOCS)
    assert all(type(v) is list and type(v[0]) is float for v in ours)
    for got, want in zip(ours, core, strict=True):
        assert _cosine(got, want) >= 0.99999
    assert embeddings.embed_documents([]) == []


def test_native_async_matches_sync(embeddings: MiniLMEmbeddings) -> None:
    # Overridden (asyncio.to_thread over the sync code), not the base class's executor default.
    assert MiniLMEmbeddings.aembed_query is not Embeddings.aembed_query
    assert MiniLMEmbeddings.aembed_documents is not Embeddings.aembed_documents

    async def both() -> tuple[list[float], list[list[float]]]:
        return await asyncio.gather(
            embeddings.aembed_query(QUERY), embeddings.aembed_documents(DOCS)
        )

    q, d = asyncio.run(both())
    assert _cosine(q, embeddings.embed_query(QUERY)) >= 0.99999
    for got, want in zip(d, embeddings.embed_documents(DOCS), strict=True):
        assert _cosine(got, want) >= 0.99999


def test_model_name_alias_default_and_extra_forbid() -> None:
    assert MiniLMEmbeddings(model="all-MiniLM-L6-v2").model_name == "all-MiniLM-L6-v2"
    assert MiniLMEmbeddings(model_name="all-MiniLM-L6-v2").model_name == "all-MiniLM-L6-v2"
    assert MiniLMEmbeddings().model_name == DEFAULT_MODEL  # resolved, weights not loaded
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        MiniLMEmbeddings(model_name="all-MiniLM-L6-v2", api_key="x")  # type: ignore[call-arg]
    with pytest.raises(ValidationError):
        MiniLMEmbeddings(model_name="all-MiniLM-L6-v2", batch_size=0)


def test_repr_shows_config_only(embeddings: MiniLMEmbeddings) -> None:
    assert repr(embeddings) == (
        "MiniLMEmbeddings(model_name='all-MiniLM-L6-v2', device=None, batch_size=256, "
        "backend='auto')"
    )


def test_unknown_model_fails_at_construction_with_the_core_error(tmp_path) -> None:
    with pytest.raises(ModelNotFound, match="not available"):
        MiniLMEmbeddings(model_name=str(tmp_path / "no-such-model"))


def test_weights_are_loaded_once_per_process(embeddings: MiniLMEmbeddings) -> None:
    before = load_backend.cache_info()
    other = MiniLMEmbeddings(model_name="all-MiniLM-L6-v2")
    other.embed_query("warm")
    assert other.embedder.load() is embeddings.embedder.load()
    assert load_backend.cache_info().misses == before.misses


def test_from_embedder_shares_the_core_embedder() -> None:
    core = Embedder("all-MiniLM-L6-v2")
    wrapped = MiniLMEmbeddings.from_embedder(core)
    assert wrapped.embedder is core
    assert wrapped.model_name == "all-MiniLM-L6-v2"
