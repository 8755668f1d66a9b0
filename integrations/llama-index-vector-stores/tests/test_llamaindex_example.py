"""examples/llamaindex_rag.py runs offline and prints the right passage first."""

from __future__ import annotations

import runpy
from collections.abc import Iterator
from pathlib import Path

import pytest
from llama_index.core import Settings

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_rag.py"


@pytest.fixture
def restore_settings() -> Iterator[None]:
    previous = Settings._embed_model
    yield
    Settings._embed_model = previous


@pytest.mark.usefixtures("restore_settings")
def test_example_prints_retrieved_passages(capsys: pytest.CaptureFixture[str]) -> None:
    main = runpy.run_path(str(EXAMPLE))["main"]
    main("Which talk explains tuning HNSW graph parameters?")
    out = capsys.readouterr().out
    assert "indexed 36 sessions" in out
    first = out.split("\n[", 1)[1]
    assert "Tobias Lindqvist (Retrieval)" in first.splitlines()[0]
    assert out.count("\n[") == 3
