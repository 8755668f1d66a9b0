"""`MiniLMEmbedding` translates to the core embedder: same vectors, same paths, one load."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import pytest
from llama_index.core.base.embeddings.base import BaseEmbedding
from llama_index.core.instrumentation import get_dispatcher
from llama_index.core.instrumentation.event_handlers import BaseEventHandler
from llama_index.core.instrumentation.events import BaseEvent
from llama_index.core.instrumentation.events.embedding import EmbeddingEndEvent
from llama_index.embeddings.minilm import MiniLMEmbedding
from pydantic import Field

from minilm_qdrant import DEFAULT_MODEL, Embedder, ModelNotFound
from minilm_qdrant.backends import load_backend

QUERY = "How do I tune HNSW parameters for recall?"
TEXTS = [f"Passage number {i} about vector search." for i in range(7)]


def _cosine(a: list[float] | np.ndarray, b: list[float] | np.ndarray) -> float:
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


class _BatchSizes(BaseEventHandler):
    """Records the size of each embedding call LlamaIndex makes (its own instrumentation)."""

    sizes: list[int] = Field(default_factory=list)

    @classmethod
    def class_name(cls) -> str:
        return "BatchSizes"

    def handle(self, event: BaseEvent, **kwargs: object) -> None:
        if isinstance(event, EmbeddingEndEvent):
            self.sizes.append(len(event.chunks))


@pytest.fixture
def batch_sizes() -> Iterator[list[int]]:
    handler = _BatchSizes(sizes=[])
    dispatcher = get_dispatcher()
    dispatcher.add_event_handler(handler)
    yield handler.sizes
    dispatcher.event_handlers.remove(handler)


def test_query_equals_core_query_vector(embed_model: MiniLMEmbedding) -> None:
    core = Embedder("all-MiniLM-L6-v2")
    ours = embed_model.get_query_embedding(QUERY)
    assert _cosine(ours, core.embed_query(QUERY)) >= 0.99999
    assert len(ours) == 384 and all(type(x) is float for x in ours)


def test_texts_use_the_core_document_path(embed_model: MiniLMEmbedding) -> None:
    core = Embedder("all-MiniLM-L6-v2").embed_documents(TEXTS[:2])
    assert _cosine(embed_model.get_text_embedding(TEXTS[0]), core[0]) >= 0.99999
    batch = embed_model.get_text_embedding_batch(TEXTS[:2])
    assert [_cosine(a, b) for a, b in zip(batch, core, strict=True)] == pytest.approx(
        [1.0, 1.0], abs=1e-5
    )


def test_embed_batch_size_is_honoured(batch_sizes: list[int]) -> None:
    model = MiniLMEmbedding(model_name="all-MiniLM-L6-v2", embed_batch_size=3)
    assert model.embedder.batch_size == 3  # the core's forward passes are bounded too
    vectors = model.get_text_embedding_batch(TEXTS)
    assert len(vectors) == len(TEXTS)
    assert batch_sizes == [3, 3, 1]


def test_async_versions_match_sync(embed_model: MiniLMEmbedding) -> None:
    for name in ("_aget_query_embedding", "_aget_text_embedding", "_aget_text_embeddings"):
        assert getattr(MiniLMEmbedding, name) is not getattr(BaseEmbedding, name)

    async def run() -> tuple[list[float], list[float], list[list[float]]]:
        return await asyncio.gather(  # type: ignore[return-value]
            embed_model.aget_query_embedding(QUERY),
            embed_model.aget_text_embedding(TEXTS[0]),
            embed_model.aget_text_embedding_batch(TEXTS[:3]),
        )

    query, text, batch = asyncio.run(run())
    assert _cosine(query, embed_model.get_query_embedding(QUERY)) >= 0.99999
    assert _cosine(text, embed_model.get_text_embedding(TEXTS[0])) >= 0.99999
    for got, want in zip(batch, embed_model.get_text_embedding_batch(TEXTS[:3]), strict=True):
        assert _cosine(got, want) >= 0.99999


def test_class_name_serialisation_and_repr(embed_model: MiniLMEmbedding) -> None:
    assert MiniLMEmbedding.class_name() == "MiniLMEmbedding"
    data = embed_model.to_dict()
    assert data["class_name"] == "MiniLMEmbedding"
    assert data["model_name"] == "all-MiniLM-L6-v2"
    assert "_embedder" not in data and "embedder" not in data
    assert "Embedder(" not in repr(embed_model)  # the private model stays out of the repr
    assert MiniLMEmbedding().model_name == DEFAULT_MODEL  # resolved, weights not loaded


def test_unknown_model_fails_at_construction_with_the_core_error(tmp_path) -> None:
    with pytest.raises(ModelNotFound, match="not available"):
        MiniLMEmbedding(model_name=str(tmp_path / "no-such-model"))


def test_weights_are_loaded_once_per_process(embed_model: MiniLMEmbedding) -> None:
    before = load_backend.cache_info()
    other = MiniLMEmbedding(model_name="all-MiniLM-L6-v2")
    other.get_query_embedding("warm")
    assert other.embedder.load() is embed_model.embedder.load()
    assert load_backend.cache_info().misses == before.misses
