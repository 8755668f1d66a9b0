"""The real stores every test suite of the repository runs on (the core's and the framework
packages'): imported by each `conftest.py` (pytest's ``pythonpath`` puts this folder on the
path), so a store fixture is written once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

ENGINES = ["edge", "local-path", "memory"]
# a small corpus the framework rerun tests share
CATS = "Cats sleep most of the day, curled up in warm and sunny spots by the window."
PARROTS = "Parrots can learn to mimic human speech and whole phrases they hear often."
RUST = ("Rust's borrow checker enforces memory safety at compile time, without a garbage "
        "collector.")
TOPICS = ["proofing", "hydration", "starter", "scoring", "steam", "crumb", "crust", "flour"]


def engine_path(kind: str, tmp_path: Path) -> str:
    """A ``path=`` for each real engine: ``edge`` (the embedded default), ``local-path`` (a DIR
    that already holds a qdrant-client local store keeps opening as one), ``memory``."""
    if kind == "memory":
        return ":memory:"
    path = str(tmp_path / "store")
    if kind == "local-path":
        QdrantClient(path=path).close()
    return path


@pytest.fixture(params=ENGINES)
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store of its own on each real engine."""
    return engine_path(request.param, tmp_path)


@pytest.fixture
def client(tmp_path: Path) -> Iterator[QdrantClient]:
    """qdrant-client's local mode on a store of its own."""
    c = QdrantClient(path=str(tmp_path / "store"))
    yield c
    c.close()


@pytest.fixture(params=["edge", "local-path"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A persistent store of its own on each engine a rerun reopens: Edge and local mode."""
    return engine_path(request.param, tmp_path)


def run_example(script: Path, *args: str, cwd: Path) -> str:
    """Run an example as a user would (a process of its own, from ``cwd``, offline); its
    stdout, or an assertion naming the end of its stderr."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run([sys.executable, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout
