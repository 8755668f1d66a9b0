"""Clean stops: Ctrl-C (SIGINT) and SIGTERM during `minilm-qdrant index`, real subprocess and
real signals: exit 130 / 143, one line on stderr, the store closed (the next process opens it)
and a rerun ends with exactly the input, skipping what was stored."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from faults import as_from_a_terminal, interrupt_when, record

from minilm_qdrant import Collection

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
N = 600


def _index(tmp_path: Path, source: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "index",
         source, "--path", "store", "--collection", "c", "--model", "all-MiniLM-L6-v2",
         "--backend", "torch", "--batch-size", "16"],
        cwd=tmp_path, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal)


def _line(i: int) -> str:
    return json.dumps({"id": i, "text": f"Document {i} on topic {i % 13}. " * 8}) + "\n"


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_stops_cleanly_and_a_rerun_finishes(tmp_path: Path, sig: int, code: int) -> None:
    (tmp_path / "docs.jsonl").write_text("".join(_line(i) for i in range(N)))
    fifo = tmp_path / "feed.jsonl"  # input that never ends: the ingest is surely mid-way
    os.mkfifo(fifo)
    proc = _index(tmp_path, fifo.name)
    fd, end = -1, time.monotonic() + 240
    while fd < 0:  # until the child opens the pipe to read it
        assert proc.poll() is None and time.monotonic() < end, proc.communicate()[1][-2000:]
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            time.sleep(0.2)
    os.set_blocking(fd, True)
    with os.fdopen(fd, "w") as feed:
        feed.write("".join(_line(i) for i in range(N // 2)))
        feed.flush()
        wal = tmp_path / "store" / "c" / "shard" / "wal"
        # a batch is written (the WAL grows from 8 KiB to ~0.6 MB); the child waits for the
        # rest of its input, which comes after the signal: it is surely mid-way
        interrupt_when(proc, sig, lambda: _blocks(wal) > 65_536)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "rerun the same command to finish" in lines[0], err
    with Collection("c", path=str(tmp_path / "store"), create=False) as col:  # lock released
        stored = col.count()
    assert 0 < stored <= N // 2
    rerun = _index(tmp_path, "docs.jsonl")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "collection now holds 600 points" in out
    with Collection("c", path=str(tmp_path / "store"), create=False) as col:
        assert sorted(int(d.id) for d in col.find()) == list(range(N))  # type: ignore[arg-type]
    record(f"{signal.Signals(sig).name} during index of {N}", f"exit {code}, one line; rerun "
           f"skipped the stored ones (0 < stored <= {N // 2}), finished", N, N)


def _cli(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", *args],
        cwd=tmp_path, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        preexec_fn=as_from_a_terminal)


def _rows(db: Path) -> int:
    """Points in a qdrant-client local store's collection, read without its lock (the child
    holds it): its sqlite file, read-only; 0 until it exists."""
    import sqlite3

    if not db.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.05) as con:
            return int(con.execute("SELECT COUNT(*) FROM points").fetchone()[0])
    except sqlite3.Error:  # not created yet, or being written: ask again
        return 0


def _blocks(folder: Path) -> int:
    """Bytes allocated to the files under ``folder`` (its WAL is sparse until written)."""
    return sum(p.stat().st_blocks * 512 for p in folder.glob("*") if p.is_file())


def test_sigint_during_push_closes_both_stores_and_a_rerun_completes_the_copy(
        tmp_path: Path) -> None:
    import numpy as np
    from qdrant_client import QdrantClient

    from minilm_qdrant import Embedder
    from minilm_qdrant.collection import CollectionOptions
    from minilm_qdrant.documents import point_id

    n, rng = 3000, np.random.default_rng(3)  # qdrant-client's local mode takes ~10 s for these
    with Collection("c", Embedder("all-MiniLM-L6-v2", backend="torch"), path=str(
            tmp_path / "edge"), options=CollectionOptions(sparse=None, windows=None)) as col:
        for start in range(0, n, 1000):  # stored points as they are: push copies, never embeds
            ids = list(range(start, start + 1000))
            col.engine.upsert("c", [point_id(i) for i in ids], rng.random(
                (1000, 384), dtype=np.float32), [{"text": f"doc {i}", "doc_id": i} for i in ids])
    args = ("push", "--path", "edge", "--collection", "c", "--to-path", "target",
            "--batch-size", "16")
    proc = _cli(tmp_path, *args)
    db = tmp_path / "target" / "collection" / "c" / "storage.sqlite"
    at_signal: list[int] = []
    # points are arriving (a batch is in) and most are still to come, checked while frozen
    interrupt_when(proc, signal.SIGINT, lambda: _rows(db) >= 16,
                   lambda: at_signal.append(_rows(db)) or at_signal[-1] < n // 2)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "points were copied to 'c' at target" in lines[0], err
    assert "rerun the same command to finish the copy" in lines[0]
    client = QdrantClient(path=str(tmp_path / "target"))  # its lock was released
    copied = client.count("c").count
    client.close()
    with Collection("c", path=str(tmp_path / "edge"), create=False) as col:  # and this one
        assert col.count() == n
    assert at_signal[-1] <= copied < n
    rerun = _cli(tmp_path, *args)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert f"Counts: source {n}, target {n}: match" in out
    client = QdrantClient(path=str(tmp_path / "target"))
    ids = {str(p.id) for p in client.scroll("c", limit=n + 10)[0]}
    client.close()
    assert ids == {point_id(i) for i in range(n)}
    record(f"SIGINT during push of {n} points", f"exit 130, one line: the points copied "
           f"(16 <= copied < {n}) named, both stores closed; rerun completed the copy, no "
           "duplicates", n, len(ids))


def test_sigterm_during_eval_keeps_the_index_and_a_rerun_finishes_it(tmp_path: Path) -> None:
    n = 2500
    data = tmp_path / "beir"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps(
        {"_id": f"d{i}", "title": f"Topic {i % 17}", "text": f"Document {i} on topic "
         f"{i % 17}, with some words about subject {i % 29}. " * 3}) + "\n" for i in range(n)))
    (data / "queries.jsonl").write_text("".join(json.dumps(
        {"_id": f"q{t}", "text": f"topic {t}"}) + "\n" for t in range(17)))
    (data / "qrels" / "test.tsv").write_text("".join(f"q{t}\td{t}\t1\n" for t in range(17)))
    args = ("eval", "beir", "--path", "store", "--collection", "c", "--model",
            "all-MiniLM-L6-v2", "--backend", "torch")
    proc = _cli(tmp_path, *args)
    wal = tmp_path / "store" / "c" / "shard" / "wal"
    # the WAL grows as batches are written: one is in (of ten), checked while frozen
    interrupt_when(proc, signal.SIGTERM, lambda: _blocks(wal) > 400_000,
                   lambda: _blocks(wal) < 2_000_000)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "rerun the same command to finish" in lines[0], err
    with Collection("c", path=str(tmp_path / "store"), create=False) as col:  # lock released
        stored = col.count()
    assert 0 < stored < n and "corpus documents were indexed into 'c'" in lines[0], lines[0]
    rerun = _cli(tmp_path, *args)
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "reused the existing index" not in out and "ndcg@10" in out, out
    with Collection("c", path=str(tmp_path / "store"), create=False) as col:
        assert col.count() == n
        assert {d.id for d in col.find()} == {f"d{i}" for i in range(n)}
    record(f"SIGTERM during eval of {n} documents (--path)", f"exit 143, one line; those "
           f"indexed (0 < indexed < {n}) kept; rerun skipped them, finished the index, scored",
           n, n)
