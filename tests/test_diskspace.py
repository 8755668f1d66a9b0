"""Free space for the embedded store: an ingest that cannot fit is refused before anything is
written, a stream stops cleanly between batches when the disk fills (the rerun finishes it),
and a store is not opened where Qdrant Edge would die of SIGBUS.

A real small filesystem (a tmpfs, when this process may mount one) shows the real thing;
elsewhere ``shutil.disk_usage`` is patched where `minilm_qdrant.engines.diskspace` calls it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from faults import record

from minilm_qdrant import Collection, Document, Embedder
from minilm_qdrant.documents import point_id
from minilm_qdrant.engines import diskspace as ds
from minilm_qdrant.errors import DiskFull, IngestError

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
MIB = 1 << 20


def _docs(n: int, size: int = 300) -> list[Document]:
    return [Document(f"Document {i} on topic {i % 7}. ".ljust(size, "x"), {"i": i}, i)
            for i in range(n)]


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A real 160 MiB tmpfs (skipped where this process may not mount one)."""
    where = tmp_path / "fs"
    where.mkdir()
    if os.geteuid() != 0 or subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=160m", "tmpfs", str(where)],
            capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _fill(fs: Path, leave: int) -> Path:
    """Fill ``fs`` until ``leave`` bytes are free; the filler file, to free it again."""
    filler = fs / "filler"
    size = shutil.disk_usage(fs).free - leave
    with open(filler, "wb") as f:
        for _ in range(size // MIB):
            f.write(b"\0" * MIB)
        f.write(b"\0" * (size % MIB))
    return filler


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", *args],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300)


def test_an_ingest_that_cannot_fit_is_refused_before_writing(small_fs: Path) -> None:
    docs = small_fs / "docs.jsonl"
    docs.write_text("".join(
        f'{{"id": {i}, "text": "Document {i} {"word " * 2000}"}}\n' for i in range(1000)))
    _fill(small_fs, 80 * MIB)  # 10 MB of text: ~60 MB on disk, with the 64 MB reserve too much
    result = _cli("index", "docs.jsonl", "--path", "store", "--collection", "c",
                  "--model", "all-MiniLM-L6-v2", cwd=small_fs)
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: not enough free space on store"), lines
    assert "of 1,000 documents of collection 'c'" in lines[0] and "--path" in lines[0]
    assert not (small_fs / "store").exists()  # a failed first index leaves no store behind
    record("index of 10 MB of text with 80 MB free (real tmpfs)", "refused before writing, one "
           "line naming the store, the estimate, the free space; no store left behind", 0, 0)


def test_a_full_disk_refuses_to_open_the_store_instead_of_sigbus(
        small_fs: Path, embedder: Embedder) -> None:
    store = small_fs / "store"
    with Collection("c", embedder, path=str(store)) as col:
        col.upsert(_docs(40))
    filler = _fill(small_fs, 8 * MIB)  # measured: Edge opening with 12 MB free died of SIGBUS
    result = _cli("search", "topic", "--path", "store", "--collection", "c", cwd=small_fs)
    assert result.returncode == 1, (result.returncode, result.stderr)  # not -7 (SIGBUS)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "free on the filesystem of store" in lines[0], lines
    filler.unlink()
    with Collection("c", path=str(store), create=False) as col:
        assert col.count() == 40 and col.search("topic 3", 1)
    record("search of a store on a full disk (8 MB free, real tmpfs)", "refused to open (no "
           "SIGBUS), one line; store intact once space is freed", 40, 40)


class _Disk:
    """A filesystem of ``capacity`` bytes holding only ``root``: free = capacity - its blocks."""

    def __init__(self, root: Path, capacity: int) -> None:
        self.root, self.capacity = root, capacity

    def used(self) -> int:
        return sum(p.stat().st_blocks * 512 for p in self.root.rglob("*") if p.is_file())

    def usage(self, path: Any) -> Any:
        free = max(0, self.capacity - self.used())
        return shutil._ntuple_diskusage(self.capacity, self.capacity - free, free)  # type: ignore[attr-defined]


def test_a_stream_stops_between_batches_when_the_disk_fills_and_a_rerun_finishes(
        embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    docs = _docs(200)
    with Collection("c", embedder, path=str(store), batch_size=16) as col:
        disk = _Disk(store, 0)
        disk.capacity = disk.used() + ds.MARGIN + MIB // 2  # room for a few batches, not all
        monkeypatch.setattr(ds.shutil, "disk_usage", disk.usage)
        with pytest.raises(IngestError) as err:
            col.upsert(iter(docs))  # a stream: its size is unknown, so checked batch by batch
        written = err.value.report.written
        assert written == col.count() and 0 < written < len(docs) and written % 16 == 0
        assert isinstance(err.value.__cause__, DiskFull)
    message = str(err.value)
    assert "\n" not in message and "not enough free space on" in message
    assert "Rerun the same ingest to complete it" in message
    disk.capacity += 100 * MIB  # space freed
    with Collection("c", embedder, path=str(store), batch_size=16) as col:
        report = col.upsert(iter(docs))
        assert report.unchanged == written and report.written == len(docs) - written
        assert sorted(int(p.id) for p in col.find()) == list(range(len(docs)))  # type: ignore[arg-type]
    record("disk fills during a streamed ingest of 200 (simulated 0.5 MB)", "stopped between "
           "batches: whole batches kept (0 < kept < 200), one line; rerun skipped them, "
           "finished", 200, 200)


def test_a_list_that_cannot_fit_is_refused_before_any_write(
        embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = tmp_path / "store"
    with Collection("c", embedder, path=str(store)) as col:
        disk = _Disk(store, 0)
        disk.capacity = disk.used() + ds.MARGIN + MIB
        monkeypatch.setattr(ds.shutil, "disk_usage", disk.usage)
        before = disk.used()
        with pytest.raises(DiskFull, match=r"for ~\d.* MB of 500 documents of collection 'c'"):
            col.upsert(_docs(500, 2000))
        assert col.count() == 0 and disk.used() == before


def test_the_estimate_is_conservative_against_a_real_store(
        embedder: Embedder, tmp_path: Path) -> None:
    docs = _docs(300, 600)
    with Collection("c", embedder, path=str(tmp_path / "s")) as col:
        empty = _Disk(tmp_path / "s", 0).used()
        col.upsert(docs)
    used = _Disk(tmp_path / "s", 0).used() - empty
    windows = 4 * 384 * sum(1 + len(d.text) // ds.WINDOW_CHARS for d in docs)  # a vector each
    payload = sum(len(d.text) + 200 for d in docs) + windows
    estimate = len(docs) * ds.disk_bytes(384, 0) + ds.FACTOR * payload
    assert used < estimate < 4 * used  # conservative, not absurd


def test_a_store_is_not_opened_with_too_little_free_space(
        embedder: Embedder, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with Collection("c", embedder, path=str(tmp_path / "s")) as col:
        col.engine.upsert("c", [point_id(1)], np.ones((1, 384), np.float32), [{"text": "a"}])
    monkeypatch.setattr(ds.shutil, "disk_usage", _Disk(tmp_path / "s", 0).usage)
    with Collection("c", path=str(tmp_path / "s"), create=False) as col, \
            pytest.raises(DiskFull, match="opening the embedded store needs 40 MB"):
        col.count()
