"""Shared fixtures: the real bundled weights, loaded once per session; real Qdrant stores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from minilm_qdrant import Embedder

MODEL = "all-MiniLM-L6-v2"


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    e = Embedder(MODEL)
    e.load()
    return e


@pytest.fixture
def store(tmp_path) -> str:
    """A path for an embedded store of its own."""
    return str(tmp_path / "store")
