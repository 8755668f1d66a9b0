"""A child process for the crash and lock tests: ``ingest STORE N`` or ``hold STORE``.

``ingest`` writes the crash corpus in batches of 8 as the parent feeds it (one document index
a line on stdin: it cannot finish before the parent says so), printing a line after each
acknowledged batch; ``hold`` opens the store, says ``open``, closes it on a ``close`` line and
exits at EOF.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator

from minilm_qdrant import Collection, Document, Embedder

MODEL = "all-MiniLM-L6-v2"


def document(i: int) -> Document:
    """Every fifth document is long: about 700 word pieces, three windows."""
    text = f"Crash corpus document {i}: notes on topic {i % 7} and item {i}."
    if i % 5 == 0:
        text = " ".join([text] * 45)
    return Document(text, {"i": i}, f"c{i}")


def corpus(n: int) -> list[Document]:
    """The documents the crash test ingests (the same in parent and child)."""
    return [document(i) for i in range(n)]


def fed() -> Iterator[Document]:
    """The documents whose indices the parent writes to stdin, as they arrive."""
    for line in sys.stdin:
        yield document(int(line))


def main(mode: str, store: str) -> None:
    col = Collection("docs", Embedder(MODEL, backend="torch"), path=store, batch_size=8)
    if mode == "ingest":
        col.upsert(fed(), on_progress=lambda k: print(f"batch {k}", flush=True))
        print("done", flush=True)
        col.close()
        return
    print("open", flush=True)
    for line in sys.stdin:
        if line.strip() == "close":
            col.close()
            print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
