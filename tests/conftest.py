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


def engine_path(kind: str, tmp_path) -> str:
    """A ``path=`` for each real engine: ``edge`` (the embedded default), ``local-path`` (a DIR
    that already holds a qdrant-client local store keeps opening as one), ``memory``."""
    if kind == "memory":
        return ":memory:"
    path = str(tmp_path / "store")
    if kind == "local-path":
        from qdrant_client import QdrantClient

        QdrantClient(path=path).close()
    return path


@pytest.fixture(params=["edge", "local-path", "memory"])
def location(request: pytest.FixtureRequest, tmp_path) -> str:
    """A store of its own on each real engine."""
    return engine_path(request.param, tmp_path)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Leave the run's reliability rows outside the checkout and say where (`reliability`):
    the whole suite's run (no paths, no ``-k`` or ``-m``) leaves exactly its rows, a partial
    run merges its rows into those left before. ``python -m tests.reliability`` then writes
    ``reports/reliability.md`` from them; the test run itself never writes into the checkout."""
    from faults import ROWS
    from reliability import save_rows, table_markdown

    if not ROWS:
        return
    config = terminalreporter.config
    whole = (config.args_source == pytest.Config.ArgsSource.TESTPATHS
             and not config.option.keyword and not config.option.markexpr)
    path = save_rows(ROWS, whole)
    terminalreporter.write_sep("=", f"reliability rows ({len(ROWS)}) -> {path}")
    terminalreporter.write(table_markdown(ROWS))
    terminalreporter.write_line("python -m tests.reliability writes reports/reliability.md "
                                "from them")
