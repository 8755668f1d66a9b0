"""Real bundled weights (loaded once per session) and real Qdrant engines for the store."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.vector_stores.minilm import MiniLMVectorStore
from qdrant_client import QdrantClient

from minilm_qdrant import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    e = Embedder("all-MiniLM-L6-v2")
    e.load()
    return e


@pytest.fixture(params=["edge", "memory", "local-path"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "memory":
        return ":memory:"
    path = str(tmp_path / "store")
    if request.param == "local-path":
        QdrantClient(path=path).close()
    return path


@pytest.fixture
def store(location: str, embedder: Embedder) -> Iterator[MiniLMVectorStore]:
    from minilm_qdrant import Collection

    s = MiniLMVectorStore(collection=Collection("talks", embedder, path=location))
    yield s
    s.close()
