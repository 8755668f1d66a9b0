"""Fixtures on the real bundled weights (loaded once per session) and real local-mode Qdrant."""

from __future__ import annotations

import os

import pytest
from stores import client, location  # noqa: F401  (the shared store fixtures, tests/stores.py)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from llama_index.embeddings.minilm import MiniLMEmbedding


@pytest.fixture(scope="session")
def embed_model() -> MiniLMEmbedding:
    e = MiniLMEmbedding(model_name="all-MiniLM-L6-v2")
    e.embedder.load()
    return e


