"""BM25 sparse vectors: Qdrant Edge's own encoder (Rust, no model to download), run client side.

Documents are encoded with term-frequency weights (k, b, avg_len); queries with weight 1 per
unique term; the collection's sparse vector carries the IDF modifier, so the engine (Edge or a
server) applies IDF from its own statistics. The settings go into the collection's fingerprint:
a query is always encoded the way its documents were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import qdrant_edge as qe

from minilm_qdrant.errors import InputError

TOKENIZERS = ("word", "whitespace", "prefix", "multilingual", "code")


@dataclass(frozen=True)
class Bm25Settings:
    """How texts become BM25 sparse vectors; part of a collection's fingerprint."""

    language: str = "english"
    """Stopwords and stemmer (``english``, ``german``, ``french``, ...)."""
    k: float = 1.2
    """Term-frequency saturation."""
    b: float = 0.75
    """Length normalisation (0 none, 1 full)."""
    avg_len: float = 256.0
    """Expected average document length in tokens."""
    tokenizer: str = "word"

    def __post_init__(self) -> None:
        if self.tokenizer not in TOKENIZERS:
            raise InputError(f"BM25 tokenizer {self.tokenizer!r} is not one of {TOKENIZERS}")

    def as_dict(self) -> dict[str, Any]:
        return {"kind": "bm25", **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Bm25Settings:
        """Settings read back from a fingerprint (unknown keys are an error, never ignored)."""
        fields = {k: v for k, v in data.items() if k != "kind"}
        if data.get("kind", "bm25") != "bm25":
            raise InputError(f"sparse vectors of kind {data.get('kind')!r} are not supported")
        try:
            return cls(**fields)
        except TypeError as exc:
            raise InputError(f"unreadable BM25 settings {data}: {exc}") from None


class Bm25Encoder:
    """Texts -> BM25 sparse vectors (``indices``, ``values``), as Qdrant Edge computes them."""

    def __init__(self, settings: Bm25Settings | None = None) -> None:
        self.settings = settings or Bm25Settings()
        s = self.settings
        try:
            self._model = qe.Bm25(qe.Bm25Config(
                k=s.k, b=s.b, avg_len=s.avg_len,
                tokenizer=getattr(qe.TokenizerType, s.tokenizer.capitalize()),
                language=s.language,
            ))
        except ValueError as exc:
            raise InputError(f"BM25 settings {s}: {exc}") from None

    def __repr__(self) -> str:
        return f"Bm25Encoder({self.settings})"

    def encode_documents(self, texts: list[str]) -> list[qe.SparseVector]:
        embed = self._model.embed_document
        return [embed(t) for t in texts]

    def encode_query(self, text: str) -> qe.SparseVector:
        return self._model.embed_query(text)
