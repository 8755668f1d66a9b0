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
from faults import record

from minilm_qdrant import Collection

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
N = 600


def _index(tmp_path: Path, source: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", "index",
         source, "--path", "store", "--collection", "c", "--model", "all-MiniLM-L6-v2",
         "--backend", "torch", "--batch-size", "16"],
        cwd=tmp_path, env=ENV, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


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
        shard = tmp_path / "store" / "c" / "shard"
        end = time.monotonic() + 240
        while not shard.exists() and time.monotonic() < end and proc.poll() is None:
            time.sleep(0.2)
        time.sleep(8)  # weights loaded, batches written (not asserted: timing)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "rerun the same command to finish" in lines[0], err
    with Collection("c", path=str(tmp_path / "store"), create=False) as col:  # lock released
        stored = col.count()
    assert stored < N
    rerun = _index(tmp_path, "docs.jsonl")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    assert "collection now holds 600 points" in out
    with Collection("c", path=str(tmp_path / "store"), create=False) as col:
        assert sorted(int(d.id) for d in col.find()) == list(range(N))  # type: ignore[arg-type]
    record(f"{signal.Signals(sig).name} during index of {N}", f"exit {code}, one line; rerun "
           f"skipped the {stored} stored, finished", N, N)
