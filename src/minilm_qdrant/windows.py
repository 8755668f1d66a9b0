"""Windows: a text of any length cut into overlapping spans that fit the model, each embedded.

A document longer than the model's limit (256 word pieces for all-MiniLM-L6-v2) is cut on the
model's own tokenizer into windows of at most ``size`` word pieces overlapping by about
``overlap``; a cut prefers a paragraph end, then a sentence end, then a word start, within the
last quarter of a window. Windows are kept as character offsets into the text, so a hit can hand
back the passage that answered. A text that fits is one window: the whole text.

Above the model (it cuts on the model's tokenizer and embeds a long query window by window);
knows nothing of engines or the CLI: the write path, the query path and the hits use it.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from tokenizers import Encoding, Tokenizer

from minilm_qdrant.documents import Passage
from minilm_qdrant.embedder import Embedder, check_text
from minilm_qdrant.errors import InputError

SPANS_KEY = "windows"
"""Payload key: the windows' ``[start, end]`` character offsets in the stored text."""
CODES_KEY = "window_codes"
"""Payload key (a document of more than one window): every window's vector in int8 with a scale
per row, so a hit's passage is picked from its payload. Reading a hit's window vectors from the
engine instead costs ~0.2 ms a long hit on Edge (they cross as Python lists) and 16 x 384 floats
of JSON a hit from a server; the int8 rows pick the same window 99.9% of the time
(`benchmarks/windows.md`)."""
Span = tuple[int, int]
_SENTENCE_END = {".", "!", "?", ";", ":"}


@dataclass(frozen=True)
class WindowSettings:
    """How long texts are cut; part of a collection's fingerprint (queries are cut the same
    way as its documents)."""

    size: int | None = None
    """Word pieces per window; None: the model's limit (special tokens and prompt aside)."""
    overlap: int = 64
    """Word pieces two neighbouring windows share (context across a cut)."""

    def resolved(self, limit: int) -> WindowSettings:
        """With ``size`` fixed: the model's ``limit`` where None, never above it."""
        size = limit if self.size is None else self.size
        if size > limit:
            raise InputError(f"window size {size} is over the model's limit of {limit} "
                             "word pieces; choose a size up to it")
        if size < 8 or not 0 <= self.overlap <= size // 2:
            raise InputError(f"windows need size >= 8 and 0 <= overlap <= size / 2; got size "
                             f"{size}, overlap {self.overlap}")
        return WindowSettings(size, self.overlap)

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "overlap": self.overlap}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSettings:
        return cls(size=data.get("size"), overlap=int(data.get("overlap", 64)))


class Windows:
    """Cuts texts into windows of one model's tokenizer (``settings`` resolved)."""

    def __init__(self, tokenizer: Tokenizer, settings: WindowSettings) -> None:
        if settings.size is None:
            raise ValueError("resolve the window size first (WindowSettings.resolved)")
        self.settings = settings
        self.size: int = settings.size
        self.overlap = settings.overlap
        self._tokenizer = tokenizer

    @classmethod
    def of(cls, embedder: Embedder, settings: WindowSettings) -> Windows:
        """A cutter of texts into ``embedder``'s windows (``settings.size`` None: its limit)."""
        return cls(embedder.tokenizer(), settings.resolved(embedder.window_limit))

    def embed_query(self, embedder: Embedder, text: str) -> np.ndarray:
        """A (w, dim) array: a query cut like the documents (a short query is one row, at the
        cost of `Embedder.embed_query`; a document used as a query gets one row a window)."""
        spans = self.cut([check_text(text, 0)])[0]
        if len(spans) == 1:
            return embedder.embed_query(text)[None, :]
        return embedder.embed_queries([text[a:b] for a, b in spans])

    def embed_queries(self, embedder: Embedder, texts: Sequence[str]) -> list[np.ndarray]:
        """`embed_query` for many queries, their windows embedded in batches."""
        cuts = self.cut([check_text(t, i) for i, t in enumerate(texts)])
        flat = embedder.embed_queries([t[a:b] for t, cut in zip(texts, cuts, strict=True)
                                       for a, b in cut])
        ends = np.cumsum([len(c) for c in cuts])
        return np.split(flat, ends[:-1])

    def cut(self, texts: Sequence[str]) -> list[list[Span]]:
        """The windows of each text, as character spans, in order."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [self._cut(text, e) for text, e in zip(texts, encodings, strict=True)]

    def _cut(self, text: str, enc: Encoding) -> list[Span]:
        offsets, tokens, n = enc.offsets, enc.tokens, len(enc.ids)
        if n <= self.size:
            return [(0, len(text))]
        rank = [_boundary(text, offsets, tokens, i) for i in range(n)]
        spans: list[Span] = []
        start = 0
        while True:
            end = start + self.size
            if end >= n:
                spans.append((offsets[start][0], offsets[n - 1][1]))
                return spans
            lowest = start + max(1, self.size * 3 // 4)
            best = max(range(lowest, end + 1), key=lambda j: (rank[j], j))
            if rank[best] == 0:
                best = end  # one word longer than a quarter window: cut inside it
            spans.append((offsets[start][0], offsets[best - 1][1]))
            after = max(best - self.overlap, start + 1)
            start = next((j for j in range(after, best) if rank[j] > 0), after)


def _boundary(text: str, offsets: list[tuple[int, int]], tokens: list[str], i: int) -> int:
    """How good a cut before token ``i`` is: 3 paragraph (a blank line), 2 sentence (or line)
    end, 1 word start, 0 inside a word."""
    if i == 0 or tokens[i].startswith("##"):
        return 0
    gap = text[offsets[i - 1][1]:offsets[i][0]]
    if gap.count("\n") > 1:
        return 3
    if "\n" in gap or tokens[i - 1] in _SENTENCE_END:
        return 2
    return 1


def window_codes(rows: np.ndarray) -> str:
    """A document's window vectors as int8 rows with a float32 scale each (base64: the scales,
    then the rows), for `CODES_KEY`."""
    rows = np.asarray(rows, dtype=np.float32)
    scale = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
    codes = np.round(rows / scale[:, None]).astype(np.int8)
    return base64.b64encode(scale.astype("<f4").tobytes() + codes.tobytes()).decode("ascii")


def coded_windows(codes: str, dim: int) -> np.ndarray | None:
    """The window vectors that `window_codes` stored (float32, to within the int8 step); None
    where ``codes`` is not ``dim``-wide rows (then the passage is read from the engine)."""
    try:
        raw = base64.b64decode(codes)
    except (ValueError, TypeError):
        return None
    n, extra = divmod(len(raw), 4 + dim)
    if n == 0 or extra:
        return None
    scale = np.frombuffer(raw, dtype="<f4", count=n)
    rows = np.frombuffer(raw, dtype=np.int8, offset=4 * n).reshape(n, dim)
    return rows.astype(np.float32) * scale[:, None]


def best_window(query: np.ndarray, windows: np.ndarray) -> int:
    """The window that answers ``query`` (rows: its windows) best: the highest summed
    similarity over the query's windows (MaxSim's own terms)."""
    return int(np.argmax(np.atleast_2d(windows) @ np.atleast_2d(query).T @ np.ones(
        np.atleast_2d(query).shape[0])))


def passage(text: str, spans: Sequence[Sequence[int]] | None, index: int) -> Passage:
    """The passage of window ``index`` (the whole text where the document is one window)."""
    if not spans or len(spans) == 1:
        return Passage(text, 0, len(text))
    start, end = spans[index]
    return Passage(text[start:end], int(start), int(end))
