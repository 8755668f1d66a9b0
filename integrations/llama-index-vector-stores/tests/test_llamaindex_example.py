"""examples/llamaindex_rag.py, run as a user runs it (a process of its own, offline), prints
what it found: the right passage first, and the same count after indexing again."""

from __future__ import annotations

from pathlib import Path

from stores import run_example

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "llamaindex_rag.py"


def test_example_prints_retrieved_passages(tmp_path: Path) -> None:
    out = run_example(EXAMPLE, "Which talk explains tuning HNSW graph parameters?",
                      cwd=tmp_path)
    assert out.count("indexed 36 sessions\n") == 2  # the rerun wrote the same points
    first = out.split("\n[", 1)[1]
    assert "Tobias Lindqvist (Retrieval)" in first.splitlines()[0]
    assert out.count("\n[") == 3
    assert list(tmp_path.iterdir()) == []  # nothing written where it ran
