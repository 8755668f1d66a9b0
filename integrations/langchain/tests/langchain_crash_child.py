"""Child for the SIGKILL test: ``add_texts`` into an embedded store, in batches of 8, of the
texts whose indices the parent writes to stdin, saying ``fed K`` as they are taken: it cannot
finish before the parent closes its input, so the parent kills it part-way, whatever the
machine's speed."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore


def text(i: int) -> str:
    return f"Crash corpus text {i}: notes on topic {i % 7} and item {i}."


def texts(n: int) -> list[str]:
    return [text(i) for i in range(n)]


def fed() -> Iterator[str]:
    for k, line in enumerate(sys.stdin, start=1):
        if k % 8 == 0:
            print(f"fed {k}", flush=True)
        yield text(int(line))


def main(store: str, n: int) -> None:
    vs = MiniLMVectorStore(MiniLMEmbeddings(model="all-MiniLM-L6-v2"), "crash", path=store,
                           batch_size=8)
    vs.add_texts(fed(), ids=[f"t{i}" for i in range(n)])
    print("done", flush=True)
    vs.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
