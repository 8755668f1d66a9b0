"""What every backend shares: the `Backend` contract, `Encoded` results, length-sorted token
batches and the ONNX extra's check. The backends import this, never the package that picks them
(`minilm_qdrant.backends`), so no import goes in a circle."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
from tokenizers import Encoding, Tokenizer

from minilm_qdrant.errors import require

TOKEN_BUDGET = 8192
"""Padded tokens per forward pass (rows x longest row): bounds activation memory."""


@contextmanager
def bars_on_a_terminal() -> Iterator[None]:
    """transformers' "Loading weights" bar while loading a model: on a terminal only (a log or
    a pipe gets none); its setting is put back after."""
    from transformers.utils import logging as hf_logging

    if sys.stderr.isatty() or not hf_logging.is_progress_bar_enabled():
        yield
        return
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars

    hub_off = are_progress_bars_disabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.enable_progress_bar()
        if hub_off:
            disable_progress_bars()


@dataclass(frozen=True)
class Encoded:
    """Vectors for texts, with what it cost: texts are tokenised once, stats come with it."""

    vectors: np.ndarray
    """(n, dim) float32, pooled and (per the spec) normalised, in the texts' order."""
    truncated: int
    """Texts longer than the model's token limit (cut to it)."""
    tokens: int
    """Word pieces run through the model, special tokens included."""
    padded: int
    """Tokens computed including padding (``padded - tokens`` is waste)."""


class Backend(Protocol):
    """What the embedder needs from a backend."""

    def encode(self, texts: list[str], batch_size: int, limit: int | None = None) -> Encoded:
        """Vectors for the texts, each truncated to ``limit`` tokens (special tokens included;
        None: the model's ``max_tokens``); passes hold at most ``batch_size`` rows and
        `TOKEN_BUDGET` padded tokens, with texts sorted by length so that little is padding."""
        ...


class TokenizerCache:
    """A model's fast tokenizer, truncating at whichever limit a call asks for (one configured
    copy a limit: a tokenizer's truncation is its state, and calls come from two threads)."""

    def __init__(self, file: Path) -> None:
        self._json = file.read_text(encoding="utf-8")
        self._by_limit: dict[int, Tokenizer] = {}
        self._lock = threading.Lock()
        self.pad_id = int(Tokenizer.from_str(self._json).token_to_id("[PAD]") or 0)

    def get(self, limit: int) -> Tokenizer:
        with self._lock:
            tokenizer = self._by_limit.get(limit)
            if tokenizer is None:
                tokenizer = Tokenizer.from_str(self._json)
                tokenizer.no_padding()
                tokenizer.enable_truncation(limit)
                self._by_limit[limit] = tokenizer
            return tokenizer

    def encode(self, texts: list[str], limit: int) -> tuple[list[Encoding], int]:
        """Each text's encoding, cut to ``limit`` tokens, and how many texts were cut."""
        encodings = self.get(limit).encode_batch(texts)
        return encodings, sum(bool(e.overflowing) for e in encodings)

    def ids(self, texts: list[str], limit: int) -> tuple[list[list[int]], int]:
        """`encode`'s token ids."""
        encodings, truncated = self.encode(texts, limit)
        return [e.ids for e in encodings], truncated


def token_batches(lengths: list[int], budget: int, max_rows: int) -> Iterator[np.ndarray]:
    """Row indices sorted by length, cut so rows x longest row stays within ``budget`` and
    the longest row is at most an eighth (and 8 tokens) longer than the shortest: short texts
    of varied lengths would otherwise fill one wide batch mostly with padding."""
    order = np.argsort(np.asarray(lengths), kind="stable")
    start = 0
    while start < len(order):
        end = start + 1
        ceiling = lengths[order[start]] * 1.125 + 8
        while end < len(order) and end - start < max_rows:
            longest = lengths[order[end]]
            if (end - start + 1) * longest > budget or longest > ceiling:
                break
            end += 1
        yield order[start:end]
        start = end


ONNX_EXTRA = 'pip install "minilm-qdrant[onnx]"'


def require_onnx(*modules: str, what: str) -> None:
    """Fail in one line, naming the extra, where an ONNX module is not installed."""
    require(*modules, message=f"{what} needs {{module}}, which is not installed: {ONNX_EXTRA} "
            "(or choose --backend torch)")
