"""BM25 alone by ``avg_len``: the default (256 tokens) against others and each corpus's mean.

    PYTHONPATH=src python benchmarks/bm25_avglen.py 256,1024 scifact:train nfcorpus:dev \\
        scifact-long:train irled2017:dev

Each set's documents are BM25-encoded (`Bm25Encoder`, the collection's own encoder) into an
Edge shard of sparse vectors only (IDF in the engine, as in every collection), once per
``avg_len`` and once with the corpus's mean length in words; every judged query is searched.
``BM25_K`` / ``BM25_B`` in the environment set the other two settings (default 1.2 / 0.75).
Prints one JSON line per set and ``avg_len`` (NDCG@10, Recall@100); the figures are in
``windows.md`` ("BM25's avg_len").
"""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import ir_measures
import numpy as np
import qdrant_edge as qe
from ir_measures import R, nDCG
from windows import SHARED

from minilm_qdrant.engines import SPARSE_NAME
from minilm_qdrant.evaluation import load_beir
from minilm_qdrant.sparse import Bm25Encoder, Bm25Settings


def bm25_ndcg(root: str, split: str, lengths: list[float], k: float, b: float) -> None:
    data = load_beir(SHARED / root, split)
    docs = list(data.documents())
    words = round(float(np.mean([len(re.findall(r"\w+", d.text)) for d in docs])))
    qids = [q for q in data.qrels if q in data.queries]
    qrels = {q: {d: int(s) for d, s in data.qrels[q].items()} for q in qids}
    config = qe.EdgeConfig(
        vectors=qe.EdgeVectorParams(size=1, distance=qe.Distance.Dot),
        sparse_vectors={SPARSE_NAME: qe.EdgeSparseVectorParams(modifier=qe.Modifier.Idf)})
    for avg_len in [*lengths, float(words)]:
        encoder = Bm25Encoder(Bm25Settings(avg_len=avg_len, k=k, b=b))
        with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
            shard = qe.EdgeShard.create(tmp, config)
            for start in range(0, len(docs), 500):
                chunk = docs[start:start + 500]
                sparse = encoder.encode_documents([d.text for d in chunk])
                shard.update(qe.UpdateOperation.upsert_points([
                    qe.Point(start + i, {"": [1.0], SPARSE_NAME: s}, {"d": str(d.id)})
                    for i, (d, s) in enumerate(zip(chunk, sparse, strict=True))]))
            run = {}
            for q in qids:
                found = shard.query(qe.QueryRequest(
                    limit=100, with_payload=True,
                    query=qe.Query.Nearest(encoder.encode_query(data.queries[q]),
                                           using=SPARSE_NAME)))
                run[q] = {(p.payload or {})["d"]: float(p.score) for p in found}
            shard.close()
        m = ir_measures.calc_aggregate([nDCG @ 10, R @ 100], qrels, run)
        print(json.dumps({"set": root, "split": split, "avg_len": avg_len, "k": k, "b": b,
                          "mean_words": words,
                          "ndcg@10": round(m[nDCG @ 10], 4), "recall@100": round(m[R @ 100], 4),
                          "queries": len(qids)}), flush=True)


def main() -> None:
    lengths = [float(x) for x in sys.argv[1].split(",")]
    k, b = float(os.environ.get("BM25_K", 1.2)), float(os.environ.get("BM25_B", 0.75))
    for item in sys.argv[2:]:
        root, split = item.rsplit(":", 1)
        bm25_ndcg(root, split, lengths, k, b)


if __name__ == "__main__":
    main()
