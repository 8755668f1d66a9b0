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
    e = Embedder(MODEL, backend="torch")  # the reference backend; `auto` is tested on its own
    e.load()
    return e


@pytest.fixture
def store(tmp_path) -> str:
    """A path for an embedded store of its own."""
    return str(tmp_path / "store")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Write the reliability table (rows added by the fault tests) and show where it is."""
    from pathlib import Path

    from faults import ROWS, table_markdown

    if not ROWS:
        return
    out = Path(__file__).resolve().parents[1] / "reports" / "reliability.md"
    out.parent.mkdir(exist_ok=True)
    text = table_markdown(ROWS)
    out.write_text(text, encoding="utf-8")
    terminalreporter.write_sep("=", f"reliability table ({len(ROWS)} rows) -> {out}")
    terminalreporter.write(text)
