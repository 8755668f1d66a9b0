"""Fixtures on the real bundled weights (loaded once per session) and real local-mode Qdrant."""

from __future__ import annotations

import os

import pytest
from stores import client, location, path  # noqa: F401  (the shared store fixtures, tests/stores.py)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from langchain_minilm import MiniLMEmbeddings

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def embeddings() -> MiniLMEmbeddings:
    e = MiniLMEmbeddings(model_name=MODEL)
    e.embedder.load()
    return e


