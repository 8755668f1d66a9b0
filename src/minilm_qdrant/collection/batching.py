"""What may be sent, and in what batches: checks before sending, count- and byte-bounded batches.

Qdrant refuses requests over 32 MiB (about 5 MB is its advice), so every batch the collection
or `push` sends is bounded by an estimate of its size on the wire as well as by count: batches
aim at 4 MiB, and a long document whose point alone is bigger (every window's vector travels
with it) goes alone in a request of its own, up to the request bound.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import numpy as np

from minilm_qdrant.documents import Document, metadata_problem
from minilm_qdrant.embedder import Embedder
from minilm_qdrant.errors import CollectionMismatch, InputError

T = TypeVar("T")
MAX_BATCH_BYTES = 30 * 1024 * 1024
"""A server's request bound: no request above it (a document whose point alone would be is
refused, by name); under Qdrant's 32 MiB limit: a document of ~2,500 windows (~350,000 words).
An engine in this process (Edge, local mode) takes a point of any size: no wire between."""
BATCH_TARGET_BYTES = 4 * 1024 * 1024
"""What a batch of several points aims at (near Qdrant's ~5 MB advice)."""
_BYTES_PER_FLOAT = 25  # a float32 written as JSON text with separator (measured: 22-24)
_SPARSE_BYTES_PER_TERM = 24  # an index (<= 10 digits) and a float32 value as JSON text
_WORD = re.compile(r"\w+")


def bounded(
    items: Iterable[T], cost: Callable[[T], int], max_count: int, max_bytes: int
) -> Iterator[list[T]]:
    """Batches of ``items`` in order, each within ``max_count`` items and ``max_bytes``.

    When the input or ``cost`` raises (a bad line, a refused document), the items before it
    are yielded first, so that what came before a bad item is still written.
    """
    batch: list[T] = []
    size = 0
    stream = iter(items)
    while True:
        try:
            item = next(stream)
            item_cost = cost(item)
        except StopIteration:
            break
        except Exception:
            if batch:
                yield batch
            raise
        if batch and (len(batch) >= max_count or size + item_cost > max_bytes):
            yield batch
            batch, size = [], 0
        batch.append(item)
        size += item_cost
    if batch:
        yield batch


def request_bytes(payload_bytes: int, dim: int, sparse_terms: int = 0) -> int:
    """Estimated bytes of one point in a JSON request: payload, vectors as text, overhead."""
    return payload_bytes + dim * _BYTES_PER_FLOAT + sparse_terms * _SPARSE_BYTES_PER_TERM + 200


class Refused(InputError):
    """A document refused before sending; carries it so the report can name it."""

    def __init__(self, message: str, document: object) -> None:
        super().__init__(message)
        self.document = document

    def __reduce__(self) -> tuple[type[Refused], tuple[str, object]]:
        return (type(self), (str(self), self.document))  # picklable (from a worker)


def label(doc: object) -> str | int:
    if not isinstance(doc, Document):
        return f"<{type(doc).__name__}>"
    return doc.id if doc.id is not None else doc.point_id


def name(doc: Document) -> str:
    return repr(doc.id) if doc.id is not None else repr(str(doc.text)[:40])


def problem(doc: object, dim: int, max_bytes: int | None, sparse: bool = False) -> str | None:
    """Why a document cannot be sent, or None."""
    if not isinstance(doc, Document):
        return f"expected a Document, got {type(doc).__name__}"
    if not isinstance(doc.text, str):
        return f"document {name(doc)} has text of type {type(doc.text).__name__}, not a string"
    if not doc.text.strip():
        return f"document {name(doc)} has empty or whitespace-only text"
    if not doc.text.isascii():
        try:
            doc.text.encode("utf-8")
        except UnicodeEncodeError as exc:
            return f"document {name(doc)} has an unpaired surrogate at character {exc.start}"
    bad_metadata = metadata_problem(doc.metadata)
    if bad_metadata:
        return f"document {name(doc)}: {bad_metadata}; it was not sent"
    if max_bytes is None:
        return None
    cost = estimated_bytes(doc, dim, sparse)
    return too_large(doc, cost, max_bytes) if cost > max_bytes else None


def too_large(doc: Document, cost: int, max_bytes: int) -> str:
    return (
        f"document {name(doc)} needs about {cost:,} bytes in one request, over the "
        f"{max_bytes:,}-byte request bound; split the text, or raise the bound where the "
        "server accepts more (its service.max_request_size_mb; max_batch_bytes=, CLI "
        "--max-request-bytes). It was not sent."
    )


def estimated_bytes(doc: Document, dim: int, sparse: bool = False, windows: int = 0) -> int:
    """Estimated request bytes of a document's point (with its BM25 vector when ``sparse``,
    and its ``windows`` window vectors and their offsets)."""
    meta = json.dumps(doc.metadata, default=str, ensure_ascii=False)
    raw = len(doc.text.encode("utf-8", "surrogatepass")) * 2  # JSON escapes can double it
    # BM25 has at most one term per distinct word (stopwords and stems only merge them)
    terms = len(set(_WORD.findall(doc.text))) if sparse else 0
    return request_bytes(raw + len(meta), dim, terms) + windows * (dim * _BYTES_PER_FLOAT + 24)


def check_vectors(vectors: np.ndarray, docs: list[Document], dim: int) -> None:
    if vectors.ndim != 2 or vectors.shape != (len(docs), dim):
        raise InputError(
            f"vectors have shape {vectors.shape}, expected ({len(docs)}, {dim}) for documents "
            f"{preview([name(d) for d in docs])}; they were not sent"
        )
    norms = np.linalg.norm(vectors, axis=1)
    for i in np.flatnonzero(~np.isfinite(vectors).all(axis=1) | (norms == 0)):
        what = "NaN/Inf" if not np.isfinite(vectors[i]).all() else "all-zero"
        raise InputError(
            f"document {name(docs[int(i)])} embedded to an {what} vector; it was not sent"
        )
    if not math.isfinite(float(norms.sum())):
        raise InputError("vectors overflowed")


def preview(ids: list[Any], n: int = 5) -> str:
    shown = ", ".join(map(str, ids[:n]))
    return shown + (f", ... {len(ids) - n} more" if len(ids) > n else "")


MIN_AGREEMENT = 0.95
"""Cosine under which given vectors are taken for another model's. torch and ONNX vectors of
one model agree to >= 0.999; int8's quantisation is dynamic (scaled over the whole batch), so a
short text embedded in a padded batch and alone agree to ~0.978 (measured); another model's
vectors share no such space."""


def agree(embedder: Embedder, name: str, doc: Document, given: np.ndarray, text: str) -> None:
    """Refuse vectors that the collection's model did not make (one is re-embedded)."""
    if given.shape != (embedder.dim,):
        return  # check_vectors names the wrong shape
    ours = embedder.embed_documents([text], warn=False)[0]
    cosine = float(ours @ given / (np.linalg.norm(ours) * np.linalg.norm(given) or 1.0))
    if cosine < MIN_AGREEMENT:
        raise CollectionMismatch(
            f"the vector given for document {doc.id!r} is not {embedder.spec.name}'s "
            f"(cosine {cosine:.3f} to it): collection {name!r} holds that model's vectors "
            "only; embed with it (or let the collection embed)"
        )
