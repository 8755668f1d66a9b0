"""Crash safety and the embedded store's lock, with real subprocesses and a real SIGKILL.

Written against whatever ``Collection(path=...)`` opens (qdrant-client local mode today, Qdrant
Edge once it is the default), so it covers the embedded engine of the day. To run it against
another engine too, add its keyword arguments to ``ENGINES``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from crash_child import corpus
from faults import record
from reliability import within

from minilm_qdrant import Collection, Embedder, StoreInUse
from minilm_qdrant.windows import SPANS_KEY

CHILD = Path(__file__).with_name("crash_child.py")
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
ENGINES: dict[str, dict[str, Any]] = {"default-embedded": {}}
N = 96


def child(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(CHILD), *args], env=ENV, text=True, stdin=subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


def wait_for(proc: subprocess.Popen[str], word: str, timeout: float = 240) -> str:
    assert proc.stdout is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stdout.readline()
        if not line:
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"child ended before {word!r}: {err[-2000:]}")
        if line.startswith(word):
            return line
    raise AssertionError(f"no {word!r} within {timeout}s")


def vectors_by_id(col: Collection) -> dict[str, np.ndarray]:
    """Dense and window vectors by document id; every point must also hold its BM25 sparse
    vector and one vector for each of its windows."""
    out: dict[str, np.ndarray] = {}
    for batch in col.engine.scroll(col.name, 64, True):
        for p in batch:
            assert p.vector is not None and p.windows is not None
            assert p.sparse is not None and len(p.sparse.indices) > 0  # never one without
            assert len(p.windows) == len(p.payload.get(SPANS_KEY) or [0])  # all of them
            out[p.payload["doc_id"]] = np.vstack([p.vector, p.windows])
    return out


@pytest.mark.parametrize("engine", list(ENGINES))
def test_sigkill_mid_ingest_then_rerun(embedder: Embedder, tmp_path: Path, engine: str) -> None:
    store = str(tmp_path / "store")
    proc = child("ingest", store)
    assert proc.stdin is not None
    fed = N // 2  # the child cannot finish: it waits for the rest of its input
    proc.stdin.write("".join(f"{i}\n" for i in range(fed)))
    proc.stdin.flush()
    wait_for(proc, "batch")
    wait_for(proc, "batch")  # two batches acknowledged, more in flight
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    kwargs = ENGINES[engine]
    with Collection("docs", embedder, path=store, **kwargs) as col:
        after_kill = col.count()
        assert 16 <= after_kill <= fed  # killed mid-way: acknowledged batches survived
        assert set(vectors_by_id(col)) <= {d.id for d in corpus(N)}  # no phantom ids
        record(f"SIGKILL of an ingest of {N} after 2 batches ({engine})",
               "store opens; only acknowledged documents, each with dense, every window's and BM25 "
               "vectors",
               f"16..{fed}", within(16, fed, after_kill))
        report = col.upsert(corpus(N))
        assert report.ok and report.unchanged == after_kill  # acknowledged: not re-embedded
        assert report.written == N - after_kill
        rerun = vectors_by_id(col)
        assert col.count() == N
    with Collection("docs", embedder, path=str(tmp_path / "clean"), **kwargs) as clean:
        clean.upsert(corpus(N))
        expected = vectors_by_id(clean)
    assert sorted(rerun) == sorted(expected) == sorted(d.id for d in corpus(N))
    worst = max(float(np.abs(rerun[k][0] - expected[k][0]).max()) for k in expected)
    assert worst < 1e-5  # the pooled dense vector: float32
    # window vectors are stored float16: a batch of other texts may move an embedding by
    # < 1e-5, which can round to the neighbouring float16 (one step is <= 2**-11 below 1)
    steps = max(float(np.abs(rerun[k][1:] - expected[k][1:]).max()) for k in expected)
    assert steps <= 2**-11
    record(f"rerun after the SIGKILL ({engine})", "exactly the input's ids; the stored ones "
           "skipped, not re-embedded; vectors equal to a clean run's (max diff < 1e-5; float16 "
           "windows within one step)", N, len(rerun))


def test_second_process_gets_store_in_use_and_lock_is_released(
    embedder: Embedder, tmp_path: Path
) -> None:
    store = str(tmp_path / "store")
    holder = child("hold", store)
    try:
        wait_for(holder, "open")
        with pytest.raises(StoreInUse, match="in use by another process"):
            Collection("docs", embedder, path=store)
        assert holder.stdin is not None
        holder.stdin.write("close\n")
        holder.stdin.flush()
        wait_for(holder, "closed")
        Collection("docs", embedder, path=store).close()  # released by close()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    record("second process opens a held embedded store", "StoreInUse; opens after close()",
           0, 0)

    killed = child("hold", store)
    wait_for(killed, "open")
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    Collection("docs", embedder, path=store).close()  # released when the holder dies
    with Collection("docs", embedder, path=store):
        pass
    after = child("hold", store)  # released by the context manager's exit
    try:
        wait_for(after, "open")
    finally:
        after.kill()
        after.wait(timeout=30)
    record("holder killed with SIGKILL; then a context manager exits",
           "lock released both times; next process opens", 0, 0)
