"""`Embedder`: a model spec plus a backend, turning texts into float32 vectors.

The spec is resolved at once (cheap: no weights), the weights on first use, so a collection can
be validated against the model's dimension and distance before anything heavy happens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from minilm_qdrant.backends import Backend, Encoded, choose, load_backend
from minilm_qdrant.errors import InputError
from minilm_qdrant.models import DEFAULT_MODEL, ModelSpec, Pooling, locate, resolve

logger = logging.getLogger("minilm_qdrant")


class Embedder:
    """Embeds documents and queries with one model of the registry (or any ST folder).

    Args:
        model: registry name (``all-MiniLM-L6-v2``), hub id or local directory.
        backend: ``auto`` (default: the fastest lossless backend here, chosen per kind of
            call: batches and single queries each get theirs, loaded on first use), ``torch``,
            ``torch-bf16``, ``onnx`` or ``onnx-int8``; a pre-exported ONNX model always runs
            on ONNX.
        device: ``cuda``, ``cpu``...; default: CUDA when available.
        batch_size: most texts per forward pass (passes also stay within
            `~minilm_qdrant.backends.TOKEN_BUDGET` padded tokens, texts sorted by length).
        pooling / normalize / max_tokens: override the model's own settings (this changes the
            fingerprint, so such vectors never mix with the model's usual ones).
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        backend: str = "auto",
        device: str | None = None,
        batch_size: int = 256,
        pooling: Pooling | None = None,
        normalize: bool | None = None,
        max_tokens: int | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model_name = model
        self.spec: ModelSpec = resolve(
            model, pooling=pooling, normalize=normalize, max_tokens=max_tokens
        )
        self.backend_name = backend
        self.device = device
        self.batch_size = batch_size
        self.last_truncated = 0
        """How many texts the last call truncated to the model's token limit."""
        self._backend: Backend | None = None
        self._query_backend: Backend | None = None
        self._tokenizer: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"Embedder(model={self.spec.name!r}, backend={self.backend_name!r})"

    @property
    def dim(self) -> int:
        return self.spec.dim

    @property
    def fingerprint(self) -> dict[str, Any]:
        return self.spec.fingerprint()

    @property
    def model_path(self) -> Path:
        return locate(self.model_name, self.spec)

    def resolved(self, kind: str = "batch") -> str:
        """The backend that runs ``kind`` of call (``batch`` or ``query``): ``auto`` resolved."""
        if self.backend_name != "auto":
            return self.backend_name
        return choose(self.device, kind)

    def load(self, kind: str = "batch") -> Backend:
        """Load the weights now (otherwise done on first use) for batches or single queries
        (``kind="query"``); returns that backend."""
        with self._lock:
            if kind == "query" and self.spec.weights == "torch" and \
                    self.resolved("query") != self.resolved("batch"):
                if self._query_backend is None:
                    self._query_backend = load_backend(
                        self.resolved("query"), self.spec, self.model_path, self.device)
                return self._query_backend
            if self._backend is None:
                self._backend = load_backend(
                    self.resolved("batch"), self.spec, self.model_path, self.device
                )
                logger.info("loaded %s from %s", self.spec.name, self.model_path)
            return self._backend

    @property
    def window_limit(self) -> int:
        """Word pieces of text one window may hold: the model's limit less its special tokens
        ([CLS], [SEP]) and the document prompt."""
        prompt = len(self.tokenizer().encode(self.spec.document_prompt,
                                             add_special_tokens=False).ids)
        return self.spec.max_tokens - 2 - prompt

    @property
    def pass_limit(self) -> int:
        """Word pieces of text one pass of the model may hold: its position limit
        (`ModelSpec.positions`, where measured to keep quality; else its limit) less its
        special tokens and the document prompt."""
        return self.window_limit + self.spec.one_pass - self.spec.max_tokens

    def tokenizer(self) -> Any:
        """The model's own tokenizer (``tokenizers.Tokenizer``, no truncation), for cutting
        windows; loaded once, without the weights."""
        if self._tokenizer is None:
            from tokenizers import Tokenizer

            file = self.model_path / "tokenizer.json"
            if file.exists():
                tokenizer = Tokenizer.from_file(str(file))
            else:  # a folder with the slow tokenizer's files only
                from transformers import AutoTokenizer

                slow = AutoTokenizer.from_pretrained(str(self.model_path), use_fast=True)
                tokenizer = Tokenizer.from_str(slow.backend_tokenizer.to_str())
            tokenizer.no_truncation()
            tokenizer.no_padding()
            self._tokenizer = tokenizer
        return self._tokenizer

    def pooled(self, rows: np.ndarray) -> np.ndarray:
        """One vector standing for several rows (a document's windows; the HNSW candidate):
        their mean, normalised like the model's vectors; one row is its own."""
        if len(rows) == 1:
            return np.asarray(rows[0], dtype=np.float32)
        mean = rows.mean(axis=0)
        if self.spec.normalize:
            mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
        return mean.astype(np.float32)

    def embed_documents(self, texts: Sequence[str], *, warn: bool = True) -> np.ndarray:
        """An (n, dim) float32 array, one row per text, with the model's document prompt."""
        return self.encode_documents(texts, warn=warn).vectors

    def encode_documents(self, texts: Sequence[str], *, warn: bool = True,
                         limit: int | None = None) -> Encoded:
        """`embed_documents` with its cost: truncated texts, tokens and padding.

        ``warn=False`` does not log truncation (an ingest reports one total instead);
        ``limit``: the tokens a text is truncated to (special tokens included; default the
        model's ``max_tokens``, at most its position limit: windows that one pass holds).
        """
        return self._embed(texts, self.spec.document_prompt, warn, limit=limit)

    def embed_query(self, text: str, *, limit: int | None = None) -> np.ndarray:
        """A (dim,) float32 vector for a search query, with the model's query prompt (on the
        backend for single queries)."""
        return self._embed([text], self.spec.query_prompt, True, "query", limit).vectors[0]

    def embed_queries(self, texts: Sequence[str], *, limit: int | None = None) -> np.ndarray:
        """An (n, dim) float32 array: `embed_query` for many queries in batches."""
        return self._embed(texts, self.spec.query_prompt, True, limit=limit).vectors

    def _embed(
        self, texts: Sequence[str], prompt: str, warn: bool, kind: str = "batch",
        limit: int | None = None,
    ) -> Encoded:
        if isinstance(texts, str):
            raise InputError("embed_documents expects a list of texts, got one string")
        checked = [check_text(t, i) for i, t in enumerate(texts)]
        if not checked:
            return Encoded(np.zeros((0, self.dim), dtype=np.float32), 0, 0, 0)
        backend = self.load(kind)
        prompted = [prompt + t for t in checked] if prompt else checked
        limit = min(limit or self.spec.max_tokens, self.spec.one_pass)
        encoded = backend.encode(prompted, self.batch_size, limit)
        if encoded.vectors.shape != (len(prompted), self.dim):
            raise InputError(
                f"backend returned vectors of shape {encoded.vectors.shape}, expected "
                f"({len(prompted)}, {self.dim}) for {self.spec.name}"
            )
        self.last_truncated = encoded.truncated
        if encoded.truncated and warn:
            logger.warning(
                "%d of %d texts exceed %s's limit of %d word pieces and were truncated",
                encoded.truncated, len(prompted), self.spec.name, limit,
            )
        return encoded


def check_text(text: object, index: int) -> str:
    """``text`` when it is a string with something to embed, else a one-line `InputError`."""
    if not isinstance(text, str):
        raise InputError(f"text #{index} is {type(text).__name__}, not a string")
    if not text.strip():
        raise InputError(f"text #{index} is empty or whitespace only")
    return text
