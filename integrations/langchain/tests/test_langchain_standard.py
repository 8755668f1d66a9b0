"""langchain-tests' standard suites, unmodified, on the real bundled model: the embeddings, and
`MiniLMVectorStore` (sync and async) on the embedded Edge store, on qdrant-client's in-memory
local mode and on a qdrant-client local store on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore
from langchain_tests.integration_tests import (
    EmbeddingsIntegrationTests,
    VectorStoreIntegrationTests,
)
from langchain_tests.unit_tests import EmbeddingsUnitTests
from qdrant_client import QdrantClient

PARAMS = {"model": "all-MiniLM-L6-v2"}


class _OurEmbeddings:
    """What both standard embeddings suites are given: our class, the bundled model."""

    @property
    def embeddings_class(self) -> type[MiniLMEmbeddings]:
        return MiniLMEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return PARAMS


class TestMiniLMEmbeddingsUnit(_OurEmbeddings, EmbeddingsUnitTests):
    pass


class TestMiniLMEmbeddingsIntegration(_OurEmbeddings, EmbeddingsIntegrationTests):
    pass


class TestVectorStoreEdge(VectorStoreIntegrationTests):
    """The embedded Qdrant Edge store (the default of `path=`)."""

    @pytest.fixture
    def vectorstore(  # type: ignore[override]
        self, tmp_path: Path, embeddings: MiniLMEmbeddings
    ) -> Iterator[MiniLMVectorStore]:
        store = MiniLMVectorStore(embeddings, "standard", path=str(tmp_path / "edge"))
        yield store
        store.close()


class TestVectorStoreMemory(VectorStoreIntegrationTests):
    """qdrant-client's in-memory local mode."""

    @pytest.fixture
    def vectorstore(  # type: ignore[override]
        self, embeddings: MiniLMEmbeddings
    ) -> Iterator[MiniLMVectorStore]:
        store = MiniLMVectorStore(embeddings, "standard", path=":memory:")
        yield store
        store.close()


class TestVectorStoreLocal(VectorStoreIntegrationTests):
    """A qdrant-client local store on disk (what langchain-qdrant and llama-index use)."""

    @pytest.fixture
    def vectorstore(  # type: ignore[override]
        self, tmp_path: Path, embeddings: MiniLMEmbeddings
    ) -> Iterator[MiniLMVectorStore]:
        client = QdrantClient(path=str(tmp_path / "local"))
        store = MiniLMVectorStore(embeddings, "standard", client=client)
        yield store
        client.close()


class TestVectorStoreTenant(VectorStoreIntegrationTests):
    """A tenant's store on a collection whose other tenant already holds the suite's own ids
    and texts: the suite, unmodified, must find it empty and never reach the neighbour, whose
    documents are checked untouched afterwards."""

    @pytest.fixture
    def vectorstore(  # type: ignore[override]
        self, tmp_path: Path, embeddings: MiniLMEmbeddings
    ) -> Iterator[MiniLMVectorStore]:
        store = MiniLMVectorStore(embeddings, "standard", path=str(tmp_path / "edge"),
                                  tenant="acme")
        neighbour = MiniLMVectorStore(embeddings, collection=store.collection, tenant="beta")
        texts, ids = ["foo", "bar", "baz", "foo bar"], ["1", "2", "3", "4"]
        neighbour.add_texts(texts, metadatas=[{"id": i} for i in range(4)], ids=ids)
        yield store
        kept = neighbour.get_by_ids(ids)
        assert [(d.id, d.page_content, d.metadata) for d in kept] == [
            (i, t, {"id": n}) for n, (i, t) in enumerate(zip(ids, texts, strict=True))]
        store.close()
