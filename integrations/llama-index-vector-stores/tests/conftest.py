"""Real bundled weights (loaded once per session) and real Qdrant engines for the store."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from stores import client, location, path  # noqa: F401  (the shared store fixtures, tests/stores.py)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.vector_stores.minilm import MiniLMVectorStore

from minilm_qdrant import Embedder


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    e = Embedder("all-MiniLM-L6-v2")
    e.load()
    return e




@pytest.fixture
def store(location: str, embedder: Embedder) -> Iterator[MiniLMVectorStore]:  # noqa: F811
    from minilm_qdrant import Collection

    s = MiniLMVectorStore(collection=Collection("talks", embedder, path=location))
    yield s
    s.close()
