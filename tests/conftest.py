"""Shared fixtures: the real bundled weights, loaded once per session; real Qdrant stores."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from stores import client, engine_path, location  # noqa: F401  (shared fixtures)

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


def index_in_process(embedder: Embedder, monkeypatch: pytest.MonkeyPatch,
                     capsys: pytest.CaptureFixture[str], store: str):
    """``minilm-qdrant index ARGS --path STORE`` run in this process on the loaded weights:
    returns ``invoke(*args) -> (exit code, stdout, stderr)``."""
    import sys

    from minilm_qdrant import cli
    from minilm_qdrant.cli import common

    monkeypatch.setattr(common, "Embedder", lambda *a, **k: embedder)

    def invoke(*args: str) -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "argv", ["minilm-qdrant", "index", *args, "--path", store,
                                          "--model", "all-MiniLM-L6-v2"])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        out = capsys.readouterr()
        return int(exit_.value.code or 0), out.out, out.err

    return invoke


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
