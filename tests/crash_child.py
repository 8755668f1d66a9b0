"""A child process for the crash and lock tests: ``ingest STORE N`` or ``hold STORE``.

``ingest`` writes the crash corpus in batches of 8, printing a line after each acknowledged
batch; ``hold`` opens the store, says ``open``, closes it on a ``close`` line and exits at EOF.
"""

from __future__ import annotations

import sys

from minilm_qdrant import Collection, Document, Embedder

MODEL = "all-MiniLM-L6-v2"


def corpus(n: int) -> list[Document]:
    """The documents the crash test ingests (the same in parent and child)."""
    return [Document(f"Crash corpus document {i}: notes on topic {i % 7} and item {i}.",
                     {"i": i}, f"c{i}") for i in range(n)]


def main(mode: str, store: str, n: int = 0) -> None:
    col = Collection("docs", Embedder(MODEL, backend="torch"), path=store, batch_size=8)
    if mode == "ingest":
        col.upsert(corpus(n), on_progress=lambda k: print(f"batch {k}", flush=True))
        print("done", flush=True)
        col.close()
        return
    print("open", flush=True)
    for line in sys.stdin:
        if line.strip() == "close":
            col.close()
            print("closed", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]) if len(sys.argv) > 3 else 0)
