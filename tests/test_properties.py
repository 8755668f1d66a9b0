"""Property-based tests: arbitrary input never crashes unexpectedly; batching is exact."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from faults import FaultInjector, record
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minilm_qdrant import Collection, Document, Embedder, IngestError, InputError
from minilm_qdrant.collection.batching import estimated_bytes
from minilm_qdrant.inputs import ReadStats, read_documents

ANY_CHAR = st.characters(exclude_categories=())  # control characters and surrogates included
ANY_TEXT = st.text(ANY_CHAR, max_size=300)
LINE = st.one_of(
    st.binary(max_size=200),
    ANY_TEXT.map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.builds(lambda t, i: f'{{"text": {t!r}, "id": {i!r}}}'.encode("utf-8", "surrogatepass"),
              ANY_TEXT, st.one_of(st.integers(), st.text(max_size=5), st.none())),
    st.just(b"[" * 5000),
)
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@SETTINGS
@given(lines=st.lists(LINE, max_size=8), suffix=st.sampled_from([".jsonl", ".csv", ".txt"]),
       skip=st.booleans())
def test_readers_never_crash_unexpectedly(lines: list[bytes], suffix: str, skip: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"input{suffix}"
        header = b"id,text\n" if suffix == ".csv" else b""
        path.write_bytes(header + b"\n".join(lines))
        stats = ReadStats()
        try:
            docs = list(read_documents(path, skip_invalid=skip, stats=stats))
        except InputError as exc:
            assert str(path) in str(exc)  # always names the file (and line)
            return
        assert len(docs) == stats.documents and stats.documents + stats.skipped <= stats.lines
        for doc in docs:
            assert isinstance(doc.text, str) and doc.text.strip()
            doc.text.encode("utf-8")  # storable


_COLLECTIONS: dict[str, Collection] = {}


def _collection(embedder: Embedder, batch_size: int, max_bytes: int) -> Collection:
    col = _COLLECTIONS.setdefault("c", Collection("p", embedder))
    col.batch_size, col.max_batch_bytes = batch_size, max_bytes
    return col


@SETTINGS
@given(sizes=st.lists(st.integers(1, 6000), max_size=60), batch_size=st.integers(1, 12),
       max_bytes=st.integers(10_000, 60_000), repeat_ids=st.booleans())
def test_batching_never_drops_or_repeats(
    embedder: Embedder, sizes: list[int], batch_size: int, max_bytes: int, repeat_ids: bool
) -> None:
    col = _collection(embedder, batch_size, max_bytes)
    docs = [Document("é" * n, {"i": i}, i % 5 if repeat_ids else i) for i, n in enumerate(sizes)]
    assert col.windows is not None
    windows = {id(d): len(col.windows.cut([d.text])[0]) for d in docs}

    def cost(d: Document) -> int:  # a windowed point carries every window's vector
        return estimated_bytes(d, embedder.dim, sparse=True, windows=windows[id(d)])

    sendable = [d for d in docs if cost(d) <= max_bytes]
    if len(sendable) < len(docs):
        first_bad = next(i for i, d in enumerate(docs) if d not in sendable)
        with pytest.raises(InputError, match="request bound"):
            batches = []
            for b in col.writer().items(docs):
                batches.append([d for d, _ in b])
        assert [d for b in batches for d in b] == docs[:first_bad]  # all before it, in order
        return
    batches = [[d for d, _ in b] for b in col.writer().items(docs)]
    assert [d for b in batches for d in b] == docs  # nothing dropped, repeated or reordered
    for b in batches:
        assert 1 <= len(b) <= batch_size
        sizes = [cost(d) for d in b]
        assert len(b) == 1 or sum(sizes) <= max_bytes


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.one_of(ANY_TEXT, st.just(""), st.just(" \t\n"),
                                st.text(ANY_CHAR, min_size=3000, max_size=6000)),
                      min_size=1, max_size=6))
def test_pipeline_never_crashes_and_never_loses_count(embedder: Embedder, texts: list[str]) -> None:
    faults = FaultInjector()
    col = faults.collection(embedder, batch_size=4)
    docs = [Document(t, id=i) for i, t in enumerate(texts)]
    try:
        report = col.upsert(docs)
    except IngestError as exc:
        assert isinstance(exc.__cause__, InputError)
        report = exc.report
        assert not report.ok and report.failed_ids
    assert report.written == len(set(faults.acked))
    assert report.written + len(report.failed_ids) <= len(docs)
    if report.ok:
        assert report.written == len(docs)


def test_property_runs_are_recorded() -> None:
    record("hypothesis: arbitrary bytes/unicode/control chars/surrogates/nesting in "
           "JSONL, CSV, text", "only named InputErrors; batching exact", "-", "-")
