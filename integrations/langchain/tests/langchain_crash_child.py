"""Child for the SIGKILL test: ``add_texts`` of N texts into an embedded store, in batches of 8,
saying ``fed K`` as the texts are taken (the parent kills it part-way)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

from langchain_minilm import MiniLMEmbeddings, MiniLMVectorStore


def texts(n: int) -> list[str]:
    return [f"Crash corpus text {i}: notes on topic {i % 7} and item {i}." for i in range(n)]


def fed(items: list[str]) -> Iterator[str]:
    for k, text in enumerate(items, start=1):
        if k % 8 == 0:
            print(f"fed {k}", flush=True)
        yield text


def main(store: str, n: int) -> None:
    vs = MiniLMVectorStore(MiniLMEmbeddings(model="all-MiniLM-L6-v2"), "crash", path=store,
                           batch_size=8)
    vs.add_texts(fed(texts(n)), ids=[f"t{i}" for i in range(n)])
    print("done", flush=True)
    vs.close()


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
