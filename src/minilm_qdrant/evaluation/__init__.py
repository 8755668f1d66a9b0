"""Evaluation and tuning: BEIR data sets read (`beir`), runs scored through the real pipeline
(`metrics`), labelled pairs split for tuning (`labelled`), training (`training`) and the `tune`
operation that ties them together."""

from minilm_qdrant.evaluation.beir import (
    DEPTH,
    BeirDataset,
    Qrels,
    Run,
    Spans,
    load_beir,
    load_spans,
)
from minilm_qdrant.evaluation.metrics import (
    EvalResult,
    ensure_indexed,
    evaluate,
    exact_run,
    metrics,
    passage_overlap,
    run_queries,
)

__all__ = ["DEPTH", "BeirDataset", "EvalResult", "Qrels", "Run", "Spans", "ensure_indexed",
           "evaluate", "exact_run", "load_beir", "load_spans", "metrics", "passage_overlap",
           "run_queries"]
