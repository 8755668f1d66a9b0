"""The ONNX backend: tokenizers + onnxruntime + numpy, no torch at inference time.

Texts are tokenised once (truncation is counted from the same pass), sorted by length and cut
into token-budget batches (so padding is small and reported); pooling and normalisation follow
the spec exactly as the torch backend does. One session serves batches and single queries: on
the 2-core development machine two threads embed a one-claim query in 3.9 ms (int8) against
6.5 ms on one thread (`benchmarks/query.py`).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
from tokenizers import Encoding

from minilm_qdrant.backends.base import TOKEN_BUDGET, Encoded, TokenizerCache, token_batches
from minilm_qdrant.backends.onnx_export import UNFUSED
from minilm_qdrant.errors import ModelNotFound
from minilm_qdrant.models import ModelSpec

logger = logging.getLogger("minilm_qdrant")


class OnnxBackend:
    """Runs an ONNX export of a BERT-style encoder (``last_hidden_state`` output)."""

    def __init__(self, spec: ModelSpec, model_dir: Path, onnx_file: str) -> None:
        import onnxruntime as ort

        file = model_dir / onnx_file
        if not file.exists() or not (model_dir / "tokenizer.json").exists():
            raise ModelNotFound(
                f"{model_dir} has no {onnx_file} with a tokenizer.json beside it; an ONNX model "
                "directory needs both (the layout optimum writes)."
            )
        self.spec = spec
        self.file = file
        self._tokens = TokenizerCache(model_dir / "tokenizer.json")
        self._pad_id = self._tokens.pad_id
        threads = int(os.environ.get("MINILM_QDRANT_THREADS", "0")) or (os.cpu_count() or 1)
        self._session = ort.InferenceSession(
            str(file), _options(ort, threads), providers=["CPUExecutionProvider"],
            disabled_optimizers=UNFUSED,
        )
        self._inputs = {i.name for i in self._session.get_inputs()}

    device = "cpu"

    def encode(self, texts: list[str], batch_size: int, limit: int | None = None) -> Encoded:
        encodings, truncated = self._tokens.encode(texts, limit or self.spec.max_tokens)
        out = np.empty((len(encodings), self.spec.dim), dtype=np.float32)
        real = padded = 0
        for rows in token_batches([len(e.ids) for e in encodings], TOKEN_BUDGET, batch_size):
            feed = self._feed([encodings[i] for i in rows])
            real += int(feed["attention_mask"].sum())
            padded += feed["attention_mask"].size
            inputs = {k: v for k, v in feed.items() if k in self._inputs}
            hidden = self._session.run(None, inputs)[0]
            out[rows] = pool(hidden, feed["attention_mask"], self.spec.pooling,
                             self.spec.normalize)
        return Encoded(out, truncated, real, padded)

    def _feed(self, batch: list[Encoding]) -> dict[str, np.ndarray]:
        width = max(len(e.ids) for e in batch)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), width), dtype=np.int64)
        for r, e in enumerate(batch):
            ids[r, : len(e.ids)] = e.ids
            mask[r, : len(e.ids)] = 1
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def pool(hidden: np.ndarray, mask: np.ndarray, mode: str, normalize: bool) -> np.ndarray:
    """Mean (mask-weighted) or CLS pooling, then L2 normalisation, as sentence-transformers."""
    if mode == "cls":
        vectors = hidden[:, 0, :].astype(np.float32)
    else:
        m = mask[..., None].astype(np.float32)
        vectors = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
    if normalize:
        vectors = vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
    return vectors.astype(np.float32)


def _options(ort: Any, threads: int) -> Any:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts
