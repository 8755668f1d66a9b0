"""Failed batches, oversized documents, bad vectors and bad documents: nothing lost or doubled."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from faults import FaultInjector, record
from qdrant_client import QdrantClient
from qdrant_client.http.exceptions import UnexpectedResponse

from minilm_qdrant import Collection, Document, Embedder, IngestError, InputError
from minilm_qdrant.backends import Encoded
from minilm_qdrant.collection.batching import estimated_bytes
from minilm_qdrant.engines.client import ClientEngine

DOCS = [Document(f"Note {i}: the weather on day {i} was {'wet' if i % 2 else 'dry'}.",
                 {"day": i}, f"n{i}") for i in range(7)]


class FailingEngine(ClientEngine):
    """Real local-mode Qdrant, except that the Nth upsert fails for good (a 400)."""

    def __init__(self, client: QdrantClient, fail_on: int) -> None:
        super().__init__(client, where="failing")
        self.fail_on, self.calls = fail_on, 0

    def upsert(self, *args: Any, **kwargs: Any) -> None:
        self.calls += 1
        if self.calls == self.fail_on:
            raise UnexpectedResponse(400, "Bad Request", b'{"status":{"error":"injected"}}',
                                     httpx_headers())
        super().upsert(*args, **kwargs)


def httpx_headers() -> Any:
    import httpx

    return httpx.Headers()


def stored_ids(col: Collection) -> list[str]:
    return [p.payload["doc_id"] for b in col.engine.scroll(col.name, 100, False) for p in b]


def test_failed_batch_stops_and_rerun_completes_without_duplicates(
    embedder: Embedder, store: str
) -> None:
    engine = FailingEngine(QdrantClient(path=store), fail_on=2)
    col = Collection("docs", embedder, engine=engine, batch_size=3)
    with pytest.raises(IngestError) as err:
        col.upsert(DOCS)
    report = err.value.report
    assert (report.written, report.failed, report.ok) == (3, 3, False)
    assert report.failed_ids == ["n3", "n4", "n5"]
    assert "3 documents written" in str(err.value) and "n3, n4, n5" in str(err.value)
    assert col.count() == 3
    record("permanent failure of batch 2 of 3 (embedded store)",
           "IngestError: 3 written, n3-n5 named, report not ok", 3, col.count())
    col.close()
    with Collection("docs", embedder, path=store, batch_size=3) as again:
        assert again.upsert(DOCS).ok
        ids = stored_ids(again)
        assert sorted(ids) == sorted(d.id for d in DOCS) and again.count() == len(DOCS)
        record("rerun of the same ingest after the failure", "completed, no duplicates",
               len(DOCS), again.count())


def test_failed_batch_over_http_names_only_unwritten_ids(embedder: Embedder) -> None:
    faults = FaultInjector(faults=[None, 422])  # type: ignore[list-item]  # batch 2 refused
    col = faults.collection(embedder, batch_size=2)
    with pytest.raises(IngestError) as err:
        col.upsert(DOCS)
    assert err.value.report.written == 2 and err.value.report.failed_ids == ["n2", "n3"]
    assert len(faults.upserts) == 2 and len(set(faults.acked)) == 2
    record("HTTP 422 on batch 2 (of 4)", "stopped: 2 written, n2, n3 named, 1 attempt",
           2, len(set(faults.acked)))


def test_requests_stay_within_the_byte_bound(embedder: Embedder) -> None:
    bound = 150_000  # a document of 1,500 words is 7 windows: 7 vectors on the wire
    docs = [Document(("word " * (i * 97 % 1500)) + f"end {i}", id=i) for i in range(12)]
    faults = FaultInjector()
    col = faults.collection(embedder, batch_size=64, max_batch_bytes=bound)
    assert col.upsert(docs).ok
    sizes = [s.size for s in faults.upserts]
    assert len(sizes) > 1 and max(sizes) <= bound  # measured on the wire, not estimated
    assert sorted(set(faults.acked)) == sorted(d.point_id for d in docs)
    record(f"12 documents of 5-7,500 chars, {bound:,}-byte request bound",
           f"split into requests of <= {bound:,} bytes each (measured on the wire)", len(docs),
           len(set(faults.acked)))


def test_estimate_covers_the_real_request_size(embedder: Embedder) -> None:
    faults = FaultInjector()
    col = faults.collection(embedder, batch_size=1)
    docs = [Document("é" * 3000, {"k": "v" * 50}, "a"), Document("tiny", id="b"),
            Document('quotes " and \\ backslashes \n' * 50, id="c")]
    col.upsert(docs)
    assert col.windows is not None
    for doc, sent in zip(docs, faults.upserts, strict=True):
        windows = len(col.windows.cut([doc.text])[0])  # every window's vector is sent
        assert sent.size <= estimated_bytes(doc, embedder.dim, sparse=True, windows=windows)


def test_too_large_document_fails_before_sending(embedder: Embedder) -> None:
    faults = FaultInjector()
    col = faults.collection(embedder, batch_size=10)
    huge = Document("x" * (20 * 1024 * 1024), id="huge")  # 20 MB: over 30 MiB as JSON
    with pytest.raises(IngestError, match=r"'huge' needs about .* request bound") as err:
        col.upsert([DOCS[0], DOCS[1], huge, DOCS[2]])
    assert err.value.report.written == 2 and err.value.report.failed_ids == ["huge"]
    assert all("huge" not in (s.body["batch"]["payloads"][0]["doc_id"]) for s in faults.upserts)
    assert sorted(set(faults.acked)) == sorted([DOCS[0].point_id, DOCS[1].point_id])
    record("a 20 MB document after 2 good ones", "refused before sending, named; the 2 before "
           "it written", 2, len(set(faults.acked)))


@pytest.mark.parametrize("kind", ["nan", "inf", "zero", "dim"])
def test_bad_vectors_are_caught_before_sending(
    embedder: Embedder, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = embedder.encode_documents

    def broken(texts: list[str], **kwargs: Any) -> Encoded:
        encoded = real(texts, **kwargs)
        vectors = encoded.vectors
        if kind == "dim":
            vectors = vectors[:, :-1]
        else:
            vectors[1] = {"nan": np.nan, "inf": np.inf, "zero": 0.0}[kind]
        return dataclasses.replace(encoded, vectors=vectors)

    faults = FaultInjector()
    col = faults.collection(embedder, batch_size=3)
    monkeypatch.setattr(embedder, "encode_documents", broken)
    with pytest.raises(IngestError) as err:
        col.upsert(DOCS[:3])
    assert "'n1'" in str(err.value) and "not sent" in str(err.value)
    assert faults.upserts == [] and err.value.report.failed_ids == ["n0", "n1", "n2"]
    record(f"{kind} vector for one document" if kind != "dim" else "383-dim vectors (expected "
           "384)", "caught before sending, document named", 0, len(faults.acked))


@pytest.mark.parametrize("bad, shown", [
    (Document(""), "empty"), (Document("  \n\t "), "empty"),
    (Document(None, id="none"), "NoneType"),  # type: ignore[arg-type]
    (Document(42, id="int"), "int"),  # type: ignore[arg-type]
    ("a bare string", "expected a Document"), (None, "expected a Document"),
])
def test_bad_documents_are_named_and_nothing_stored_is_lost(
    embedder: Embedder, bad: object, shown: str
) -> None:
    with Collection("docs", embedder, batch_size=10) as col:
        col.upsert(DOCS[:3])

        def stream() -> Iterator[Any]:
            yield DOCS[3]
            yield bad
            yield DOCS[4]

        with pytest.raises(IngestError, match=shown) as err:
            col.upsert(stream())
        assert err.value.report.written == 1 and len(err.value.report.failed_ids) == 1
        assert col.count() == 4  # the 3 stored before + the one before the bad document
        record(f"bad document: {bad!r}"[:60], f"InputError ({shown}), earlier ones kept",
               4, col.count())


def test_input_error_types(embedder: Embedder) -> None:
    with Collection("docs", embedder) as col, pytest.raises(IngestError) as err:
        col.upsert([Document("")])
    assert isinstance(err.value.__cause__, InputError)
