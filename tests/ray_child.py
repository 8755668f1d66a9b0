"""A Ray driver for the kill test: ``ray_child.py ADDRESS DOCS.jsonl STORE``.

Joins the Ray cluster at ADDRESS (the test's own), indexes DOCS.jsonl into the embedded store
STORE on 2 workers in batches of 4, printing ``stored N`` after each acknowledged batch
(the driver is the store's one writer) and ``done`` at the end.
"""

from __future__ import annotations

import sys

from minilm_qdrant import Embedder, Location
from minilm_qdrant.distributed import index_on_ray

MODEL = "all-MiniLM-L6-v2"


def main(address: str, docs: str, store: str) -> None:
    stored = 0

    def progress(n: int) -> None:
        nonlocal stored
        stored += n
        print(f"stored {stored}", flush=True)

    report = index_on_ray(docs, location=Location(path=store),
                          embedder=Embedder(MODEL, backend="torch"), address=address,
                          workers=2, batch_size=4, on_progress=progress)
    print(f"done {report.upsert.written}", flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:4])
