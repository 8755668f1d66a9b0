"""Damaged embedded stores: real Qdrant Edge stores, really damaged (garbled metadata, a
truncated vector file, a garbled WAL or segment file). Each fault is named once, in one line,
with the file or shard at fault and the ways back; never as a network or proxy failure."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from faults import record

from minilm_qdrant import Collection, Document, Embedder
from minilm_qdrant.errors import StoreCorrupt

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
N = 40


@pytest.fixture
def store(embedder: Embedder, tmp_path: Path) -> Path:
    root = tmp_path / "store"
    with Collection("c", embedder, path=str(root)) as col:
        col.upsert([Document(f"Document {i} about topic {i % 5}.", {"i": i}, i) for i in range(N)])
    return root


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", *args],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def _one_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)  # not a crash
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    line = lines[0]
    assert "Qdrant's JSON" not in line and "failed: " not in line and "Error: " not in line
    assert line.count("restore the store from a copy") == 1  # the ways back, said once
    return line


def _segment(store: Path) -> Path:
    return next((store / "c" / "shard" / "segments").iterdir())


DAMAGE: dict[str, tuple[Callable[[Path], None], str]] = {
    "collection.json not JSON": (
        lambda s: (s / "c" / "collection.json").write_text('{"size": 384,'),
        "c/collection.json is not valid JSON (Expecting property name enclosed in double "
        "quotes at line 1 col 14)"),
    "collection.json without its size": (
        lambda s: (s / "c" / "collection.json").write_text('{"distance": "dot"}'),
        "c/collection.json lacks size"),
    "WAL garbled": (
        lambda s: _garble(s / "c" / "shard" / "wal" / "open-1"),
        "c/shard failed while opening (Service runtime error: failed to open WAL"),
    "segment.json garbled": (
        lambda s: (_segment(s) / "segment.json").write_text("garbage"),
        "c/shard failed while opening (Service runtime error: failed to load segment"),
    "vector file truncated": (
        lambda s: os.truncate(_segment(s) / "vector_storage" / "vectors" / "chunk_0.mmap", 100),
        "c/shard failed while searching (Service runtime error: vector"),
}


def _garble(path: Path) -> None:
    with open(path, "r+b") as f:
        f.write(os.urandom(64 * 1024))


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damage_is_named_in_one_line_with_the_ways_back(store: Path, case: str) -> None:
    damage, expected = DAMAGE[case]
    damage(store)
    line = _one_line(_cli("search", "topic 3", "--path", "store", "--collection", "c",
                          cwd=store.parent))
    assert f"store/{expected}" in line, line
    assert "minilm-qdrant index FILE --path NEW_DIR" in line
    record(f"search of a store with its {case}", "one line naming the file/shard and the ways "
           "back (no crash, no 'not Qdrant's JSON')", 0, 0)


def test_damage_raises_store_corrupt_in_python_and_stops_an_ingest_as_it_is(
        store: Path, embedder: Embedder) -> None:
    (store / "c" / "collection.json").write_text("not json")
    with pytest.raises(StoreCorrupt, match=r"collection\.json is not valid JSON"):
        Collection("c", path=str(store), create=False)
    _garble(store / "c" / "collection.json")  # binary: not even UTF-8
    with pytest.raises(StoreCorrupt, match=r"collection.json is not (UTF-8|valid JSON)"):
        Collection("c", embedder, path=str(store))


def test_an_ingest_into_a_damaged_shard_names_it_without_a_rerun_hint(
        store: Path, embedder: Embedder) -> None:
    _garble(store / "c" / "shard" / "wal" / "open-1")
    with Collection("c", embedder, path=str(store)) as col, \
            pytest.raises(StoreCorrupt, match="failed while opening") as err:
        col.upsert([Document("more text", id="x")])
    assert "Rerun the same ingest" not in str(err.value)  # a rerun cannot fix it
