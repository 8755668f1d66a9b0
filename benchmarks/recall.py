"""recall@10 of HNSW vs exact search on real MiniLM vectors, on the Edge engine.

    python benchmarks/recall.py DOCS.npy QUERIES.npy [N_QUERIES]

HNSW is forced (full_scan_threshold=1) so that even a small corpus such as SciFact (5,183
abstracts) is searched through the graph, then hnsw_ef is swept.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid

import numpy as np

from minilm_qdrant.collection import CollectionOptions
from minilm_qdrant.engines import SearchRequest
from minilm_qdrant.engines.edge import EdgeEngine


def main() -> None:
    docs = np.load(sys.argv[1])
    queries = np.load(sys.argv[2])[: int(sys.argv[3]) if len(sys.argv) > 3 else None]
    ids = [str(uuid.UUID(int=i + 1)) for i in range(len(docs))]
    with tempfile.TemporaryDirectory() as tmp:
        engine = EdgeEngine(tmp)
        options = CollectionOptions(full_scan_threshold=1, sparse=None)
        engine.create("s", docs.shape[1], "dot", {}, options, sparse=False, windows=True)
        for a in range(0, len(docs), 1000):
            part = ids[a:a + 1000]
            engine.upsert("s", part, docs[a:a + 1000], [{}] * len(part))
        start = time.perf_counter()
        engine.optimize("s")
        print(json.dumps({"docs": len(docs), "queries": len(queries),
                          "index_s": round(time.perf_counter() - start, 1),
                          "indexed": engine.indexed_vectors("s")}))
        exact = [[p.id for p in engine.search("s", SearchRequest(10, dense=q, exact=True))]
                 for q in queries]
        for ef in (None, 32, 64, 128, 256):
            start = time.perf_counter()
            got = [[p.id for p in engine.search("s", SearchRequest(10, dense=q, hnsw_ef=ef))]
                   for q in queries]
            ms = (time.perf_counter() - start) / len(queries) * 1000
            recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(exact, got, strict=True)])
            print(json.dumps({"hnsw_ef": ef or "default (ef_construct 100)",
                              "recall@10": round(float(recall), 4), "mean_ms": round(ms, 2)}))
        engine.close()


if __name__ == "__main__":
    main()
