"""`eval`: BEIR loading, the metric pin, the real pipeline on a tiny data set, bad data."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from math import log2
from pathlib import Path

import pytest

from minilm_qdrant import Collection, CollectionMismatch, Document, Embedder, InputError
from minilm_qdrant import evaluation as beir

ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}

CORPUS = [
    {"_id": "d1", "title": "Insulin resistance",
     "text": "Obesity and physical inactivity cause insulin resistance in muscle and liver."},
    {"_id": "d2", "title": "Vector search",
     "text": "HNSW graphs make approximate nearest neighbour search fast."},
    {"_id": "d3", "title": "Coffee", "text": "Coffee beans are roasted before brewing."},
    {"_id": "d4", "title": "",
     "text": "Photosynthesis turns light into chemical energy in plants."},
    {"_id": "d5", "title": "Volcanoes",
     "text": "Magma rises through the crust and erupts as lava."},
]
QUERIES = [
    {"_id": "q1", "text": "what causes insulin resistance?"},
    {"_id": "q2", "text": "fast nearest neighbor search"},
    {"_id": "q3", "text": "how do plants use sunlight"},
    {"_id": "q4", "text": "a query nobody judged"},
]
QRELS = "query-id\tcorpus-id\tscore\nq1\td1\t1\nq2\td2\t1\nq3\td4\t2\nq9\td1\t1\nq1\td99\t1\n"


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from minilm_qdrant.cli import main; main()", *args],
        cwd=cwd, env=ENV, capture_output=True, text=True, timeout=300,
    )


def write_beir(root: Path, corpus: str | None = None, queries: str | None = None,
               qrels: str = QRELS, split: str = "test") -> Path:
    """A BEIR directory: the tiny data set above unless told otherwise."""
    (root / "qrels").mkdir(parents=True, exist_ok=True)
    lines = "\n".join(json.dumps(o) for o in CORPUS) + "\n"
    (root / "corpus.jsonl").write_text(lines if corpus is None else corpus)
    lines = "\n".join(json.dumps(o) for o in QUERIES) + "\n"
    (root / "queries.jsonl").write_text(lines if queries is None else queries)
    (root / "qrels" / f"{split}.tsv").write_text(qrels)
    return root


def test_metrics_are_pinned_on_a_hand_checked_example() -> None:
    qrels = {"q1": {"d1": 1, "d2": 1}, "q2": {"d5": 2, "d6": 1}}
    run = {"q1": {"d3": 0.9, "d1": 0.8, "d4": 0.7, "d2": 0.6}, "q2": {"d5": 0.9, "d7": 0.5}}
    # q1: relevant at ranks 2 and 4. RR 1/2; recall 1; AP (1/2 + 2/4)/2 = 0.5;
    #     nDCG = (1/log2 3 + 1/log2 5) / (1 + 1/log2 3) = 1.061606 / 1.630930 = 0.650921.
    # q2: d5 (gain 2) at rank 1, d6 (gain 1) never found. RR 1; recall 1/2; AP 1/2;
    #     nDCG = 2 / (2 + 1/log2 3) = 2 / 2.630930 = 0.760188 (trec_eval: linear gains).
    got = beir.metrics(qrels, run)
    assert list(got) == ["ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100"]
    q1, q2 = (1 / log2(3) + 1 / log2(5)) / (1 + 1 / log2(3)), 2 / (2 + 1 / log2(3))
    assert got["ndcg@10"] == pytest.approx((q1 + q2) / 2) == pytest.approx(0.705554, abs=1e-6)
    assert got["recall@10"] == got["recall@100"] == pytest.approx(0.75)
    assert got["mrr@10"] == pytest.approx(0.75)
    assert got["map@100"] == pytest.approx(0.5)
    # Cutoff 2: q1 keeps d3, d1 (recall 1/2, nDCG (1/log2 3) / 1.630930 = 0.386853).
    at2 = beir.metrics(qrels, run, k=2)
    assert at2["recall@2"] == pytest.approx(0.5) and at2["mrr@2"] == pytest.approx(0.75)
    assert at2["ndcg@2"] == pytest.approx((1 / log2(3) / (1 + 1 / log2(3)) + q2) / 2)
    # Past the cutoff a hit does not count: q1's first relevant document is at rank 2.
    assert beir.metrics(qrels, run, k=1)["mrr@1"] == pytest.approx(0.5)


def test_load_beir_counts_unknown_qrels_without_failing(tmp_path: Path) -> None:
    data = beir.load_beir(write_beir(tmp_path), "test")
    assert data.doc_ids == {"d1", "d2", "d3", "d4", "d5"}
    assert set(data.queries) == {"q1", "q2", "q3"}  # q4 is not judged
    assert data.qrels == {"q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d4": 2}}
    assert data.unknown_query_qrels == 1 and data.unknown_doc_qrels == 1
    assert len(data.problems) == 2
    titled = next(data.documents())
    assert titled.id == "d1" and titled.text.startswith("Insulin resistance Obesity")


def test_an_empty_corpus_document_is_not_indexed_and_stays_judged(
        tmp_path: Path, embedder: Embedder) -> None:
    """As IRLeD 2017 publishes six empty judgments: the set is evaluated, not refused, and a
    qrels line naming an empty document counts as a miss (no system can find it)."""
    corpus = [*CORPUS, {"_id": "d6", "title": "", "text": "  "}]
    root = write_beir(tmp_path, corpus="\n".join(json.dumps(o) for o in corpus) + "\n",
                      qrels=QRELS + "q2\td6\t1\n")
    data = beir.load_beir(root, "test")
    assert data.doc_ids == {"d1", "d2", "d3", "d4", "d5"} and data.empty_docs == 1
    assert data.qrels["q2"] == {"d2": 1, "d6": 1}
    assert "corpus documents without text (not indexed; judged as unfindable)" in data.problems
    with Collection("tiny", embedder) as col:
        result = beir.evaluate(col, data)
        assert col.count() == 5
    assert result.scores["recall@10"] == pytest.approx((1 + 0.5 + 1) / 3)


def test_eval_through_real_model_and_qdrant(tmp_path: Path, embedder: Embedder,
                                            store: str) -> None:
    data = beir.load_beir(write_beir(tmp_path / "beir"))
    ticks: list[int] = []
    with Collection("tiny", embedder, path=store) as col:
        result = beir.evaluate(col, data, on_query=ticks.append)
        assert col.count() == 5 and not result.reused_index
        exact = beir.metrics(data.qrels, beir.exact_run(col, data.queries))
        again = beir.evaluate(col, data)  # same fingerprint and count: the index is reused
    assert result.queries == 3 and sum(ticks) == 3 and len(result.query_ms) == 3
    assert result.scores["recall@10"] == 1.0 and result.scores["mrr@10"] == 1.0
    assert result.scores["ndcg@10"] == pytest.approx(1.0)
    assert exact == pytest.approx(result.scores, abs=1e-6)
    assert again.reused_index and again.index_seconds == 0.0
    assert again.scores == pytest.approx(result.scores)
    figures = result.as_dict()
    assert figures["model"] == "all-MiniLM-L6-v2" and figures["backend"] == "torch"
    assert figures["query_ms_p99"] >= figures["query_ms_p50"] > 0


def test_a_collection_holding_another_corpus_is_refused(tmp_path: Path, embedder: Embedder,
                                                        store: str) -> None:
    data = beir.load_beir(write_beir(tmp_path / "beir"))
    with Collection("mixed", embedder, path=store) as col:
        col.upsert([Document(o["title"] + " " + o["text"], id=o["_id"]) for o in CORPUS])
        col.upsert([Document("a document of some other corpus", id="x1")])
        with pytest.raises(CollectionMismatch, match="holds 6 points but the corpus has 5"):
            beir.evaluate(col, data)


def test_cli_eval_json(tmp_path: Path) -> None:
    root = write_beir(tmp_path / "tiny")
    result = cli("eval", str(root), "--model", "all-MiniLM-L6-v2", "--json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert set(figures) == {"ndcg@10", "recall@10", "recall@100", "mrr@10", "map@100", "queries",
                            "index_seconds", "query_ms_p50", "query_ms_p99", "model", "backend",
                            "mode", "windows", "windowed", "tokens", "quantization"}
    assert figures["quantization"] == "none"  # a new collection is unquantized by default
    assert figures["queries"] == 3 and figures["recall@100"] == 1.0
    assert figures["mode"] == "hybrid-dbsf"  # the default where the collection has BM25
    assert all(math.isfinite(v) for v in figures.values() if isinstance(v, float))
    assert "unknown queries (dropped): 1" in result.stderr
    assert "unknown documents (dropped): 1" in result.stderr
    assert not (tmp_path / "qdrant_data").exists()  # a temporary store by default
    missing = cli("eval", str(root), "--split", "dev", cwd=tmp_path)
    assert missing.returncode == 1 and "dev.tsv: no such file" in missing.stderr
    assert "['test']" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"corpus": '{"_id": "d1", "text": "fine"}\n{"_id": "d2", "text": oops}\n'},
         r"corpus.jsonl:2: not valid JSON"),
        ({"corpus": '{"_id": "d1", "text": "fine"}\n\n{"text": "no id"}\n'},
         r"corpus.jsonl:3: missing '_id'"),
        ({"queries": '{"_id": "q1", "text": "ok"}\n[1, 2]\n'},
         r"queries.jsonl:2: expected a JSON object"),
        ({"qrels": "query-id\tcorpus-id\tscore\nq1\td1\n"}, r"test.tsv:2: expected 3 tab"),
        ({"qrels": "q1\td1\t1\nq2\td2\thigh\n"}, r"test.tsv:2: score 'high' is not an integer"),
        ({"qrels": "q9\td1\t1\n"}, r"no query of queries.jsonl has a relevant document"),
        ({"corpus": ""}, r"the corpus is empty"),
    ],
)
def test_malformed_data_sets_name_the_line(tmp_path: Path, change: dict[str, str],
                                           message: str) -> None:
    root = write_beir(tmp_path, **change)
    with pytest.raises(InputError, match=message):
        beir.load_beir(root, "test")


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such directory"):
        beir.load_beir(tmp_path / "nowhere")
    root = write_beir(tmp_path)
    (root / "queries.jsonl").unlink()
    with pytest.raises(InputError, match=r"queries.jsonl: no such file"):
        beir.load_beir(root)
