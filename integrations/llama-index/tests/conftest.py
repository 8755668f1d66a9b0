"""Fixtures on the real bundled weights (loaded once per session) and real local-mode Qdrant."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.embeddings.minilm import MiniLMEmbedding
from qdrant_client import QdrantClient


@pytest.fixture(scope="session")
def embed_model() -> MiniLMEmbedding:
    e = MiniLMEmbedding(model_name="all-MiniLM-L6-v2")
    e.embedder.load()
    return e


@pytest.fixture
def client(tmp_path: Path) -> Iterator[QdrantClient]:
    """qdrant-client's local mode on a store of its own."""
    c = QdrantClient(path=str(tmp_path / "store"))
    yield c
    c.close()
