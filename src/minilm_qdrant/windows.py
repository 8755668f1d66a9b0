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
from typing import Any, Literal

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


Coverage = Literal["all", "first-window"]
COVERAGES: tuple[Coverage, ...] = ("all", "first-window")


@dataclass(frozen=True)
class WindowSettings:
    """How long texts are cut; part of a collection's fingerprint (queries are cut the same
    way as its documents). A collection keeps the settings it was made with: a fingerprint
    written before ``whole``, ``last`` and ``coverage`` existed reads back as the cut of its
    time (``whole`` and ``last`` equal to ``size``, every window)."""

    size: int | None = None
    """Word pieces per window; None: the model's limit (special tokens and prompt aside)."""
    overlap: int = 64
    """Word pieces two neighbouring windows share (context across a cut)."""
    whole: int | None = None
    """A text of up to this many word pieces is one window, embedded in one pass; None:
    ``size``. Up to the model's position limit (`Embedder.pass_limit`; 510 for
    all-MiniLM-L6-v2): fewer word pieces embedded, measured to cost NDCG@10 on NFCorpus
    (`benchmarks/ingest-speed.md`), so not the default."""
    last: int | None = None
    """The most word pieces a text's last window may hold: the rest of a text that fits is
    not cut again (a short tail joins the window before it); None: ``size``."""
    coverage: Coverage = "all"
    """``all``: every word piece in a window; ``first-window``: one window a text, its first
    ``size`` word pieces (the rest reaches BM25 only), at a plain stack's cost."""
    even: bool = False
    """A text cut into windows is cut into the fewest windows of even length (a 300-piece
    text: two of ~150, not 254 and a tail); False: windows of ``size``, then the rest."""

    def resolved(self, limit: int, positions: int | None = None) -> WindowSettings:
        """With ``size``, ``whole`` and ``last`` fixed: ``size`` the model's ``limit`` where
        None; ``size``, ``whole`` and ``last`` up to ``positions`` (the word pieces one pass
        holds; default ``limit``), ``whole`` and ``last`` never under ``size``."""
        positions = limit if positions is None else max(positions, limit)
        size = limit if self.size is None else self.size
        if size > positions:
            raise InputError(f"window size {size} is over the model's limit of {positions} "
                             "word pieces; choose a size up to it")
        if size < 8 or not 0 <= self.overlap <= size // 2:
            raise InputError(f"windows need size >= 8 and 0 <= overlap <= size / 2; got size "
                             f"{size}, overlap {self.overlap}")
        whole = size if self.whole is None else self.whole
        last = size if self.last is None else self.last
        for name, value in (("whole", whole), ("last", last)):
            if not size <= value <= positions:
                raise InputError(f"window {name} {value} must be from the window size {size} "
                                 f"to the {positions} word pieces one pass of the model holds")
        if self.coverage not in COVERAGES:
            raise InputError(f"coverage {self.coverage!r} is not one of {', '.join(COVERAGES)}")
        return WindowSettings(size, self.overlap, whole, last, self.coverage, self.even)

    def as_dict(self) -> dict[str, Any]:
        return {"size": self.size, "overlap": self.overlap, "whole": self.whole,
                "last": self.last, "coverage": self.coverage, "even": self.even}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WindowSettings:
        """Settings as a fingerprint records them; a record without ``whole`` or ``last``
        (made before they existed) cut every text over ``size`` into windows of ``size``."""
        size = data.get("size")
        return cls(size=size, overlap=int(data.get("overlap", 64)),
                   whole=data.get("whole", size), last=data.get("last", size),
                   coverage=data.get("coverage", "all"), even=bool(data.get("even", False)))


class Windows:
    """Cuts texts into windows of one model's tokenizer (``settings`` resolved)."""

    def __init__(self, tokenizer: Tokenizer, settings: WindowSettings, extra: int = 2) -> None:
        if settings.size is None or settings.whole is None or settings.last is None:
            raise ValueError("resolve the window settings first (WindowSettings.resolved)")
        self.settings = settings
        self.size: int = settings.size
        self.overlap = settings.overlap
        self.whole: int = settings.whole
        self.last: int = settings.last
        self.coverage = settings.coverage
        self.tokens = max(self.whole, self.last) + extra
        """The most tokens one window is embedded with (special tokens and prompt:
        ``extra``)."""
        self._tokenizer = tokenizer

    @classmethod
    def of(cls, embedder: Embedder, settings: WindowSettings) -> Windows:
        """A cutter of texts into ``embedder``'s windows (``settings.size`` None: its limit;
        ``whole`` None: the word pieces one pass of it holds)."""
        limit = embedder.window_limit
        return cls(embedder.tokenizer(), settings.resolved(limit, embedder.pass_limit),
                   embedder.spec.max_tokens - limit)

    def embed_query(self, embedder: Embedder, text: str) -> np.ndarray:
        """A (w, dim) array: a query cut like the documents (a short query is one row, at the
        cost of `Embedder.embed_query`; a document used as a query gets one row a window)."""
        spans = self.cut([check_text(text, 0)])[0]
        if len(spans) == 1:
            a, b = spans[0]
            return embedder.embed_query(text[a:b], limit=self.tokens)[None, :]
        return embedder.embed_queries([text[a:b] for a, b in spans], limit=self.tokens)

    def embed_queries(self, embedder: Embedder, texts: Sequence[str]) -> list[np.ndarray]:
        """`embed_query` for many queries, their windows embedded in batches."""
        cuts = self.cut([check_text(t, i) for i, t in enumerate(texts)])
        flat = embedder.embed_queries([t[a:b] for t, cut in zip(texts, cuts, strict=True)
                                       for a, b in cut], limit=self.tokens)
        ends = np.cumsum([len(c) for c in cuts])
        return np.split(flat, ends[:-1])

    def cut(self, texts: Sequence[str]) -> list[list[Span]]:
        """The windows of each text, as character spans, in order."""
        encodings = self._tokenizer.encode_batch(list(texts), add_special_tokens=False)
        return [self._cut(text, e) for text, e in zip(texts, encodings, strict=True)]

    def _cut(self, text: str, enc: Encoding) -> list[Span]:
        offsets, tokens, n = enc.offsets, enc.tokens, len(enc.ids)
        if self.coverage == "first-window":  # the first `size` word pieces, as a plain stack
            return [(0, len(text))] if n <= self.size else [(0, offsets[self.size - 1][1])]
        if n <= self.whole:
            return [(0, len(text))]
        rank = [_boundary(text, offsets, tokens, i) for i in range(n)]
        spans: list[Span] = []
        start, width = 0, self.size
        if self.settings.even:  # the fewest windows that hold it, of about even length
            count = -(-(n - self.overlap) // (self.size - self.overlap))
            even = -(-(n + (count - 1) * self.overlap) // count)
            width = min(self.size, even + even // 8)
        while True:
            if n - start <= self.last:  # the rest fits the last window
                spans.append((offsets[start][0], offsets[n - 1][1]))
                return spans
            end = start + width
            lowest = start + max(1, width * 3 // 4)
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
