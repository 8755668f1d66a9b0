"""A SIGKILL during `MiniLMVectorStore.add_texts` on the embedded store, then the same call:
the store opens with only acknowledged points and the rerun ends with exactly the input."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from langchain_crash_child import texts
from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore

CHILD = Path(__file__).with_name("langchain_crash_child.py")
N = 96


def test_sigkill_during_add_texts_then_the_same_call(
    tmp_path: Path, embeddings: MiniLMEmbeddings
) -> None:
    store = str(tmp_path / "store")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join([str(CHILD.parent), *sys.path])}
    proc = subprocess.Popen([sys.executable, str(CHILD), store, str(N)], env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdin is not None
    proc.stdin.write("".join(f"{i}\n" for i in range(40)))  # the rest never comes: it cannot
    proc.stdin.flush()  # finish before the kill, however fast the machine
    end = time.monotonic() + 240
    while time.monotonic() < end:
        line = proc.stdout.readline()
        assert line, proc.communicate()[1][-2000:]
        if line.strip() == "fed 40":  # 5 batches taken, some written, waiting for more
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    vs = MiniLMVectorStore(embeddings, "crash", path=store, batch_size=8)
    try:
        after_kill = vs.collection.count()
        assert after_kill <= 40  # killed part-way
        ids = [f"t{i}" for i in range(N)]
        assert vs.add_texts(texts(N), ids=ids) == ids  # the same call again
        assert vs.collection.count() == N
        stored = vs.get_by_ids(ids)
        assert [d.id for d in stored] == ids
        assert [d.page_content for d in stored] == texts(N)
    finally:
        vs.close()
