"""Transient faults are retried (bounded, jittered, under a deadline), permanent ones are not.

Faults are injected at the HTTP transport (`faults.FaultInjector`) or by a real loopback
server (`faults.LoopbackFaults`); assertions are on what our client sent and reported.
"""

from __future__ import annotations

import itertools
import time

import httpx
import pytest
from faults import FAST, FaultInjector, LoopbackFaults, closed_port, record
from qdrant_client import QdrantClient

from minilm_qdrant import Collection, Document, Embedder, IngestError, InputError
from minilm_qdrant.errors import PermanentError, TransientError
from minilm_qdrant.retry import RetryPolicy

DOCS = [Document(f"Document number {i} about topic {i % 3}.", {"n": i}, f"d{i}")
        for i in range(5)]
TRANSIENT: list[tuple[str, object]] = [
    ("ConnectError", httpx.ConnectError("connection refused")),
    ("ReadTimeout", httpx.ReadTimeout("timed out")),
    ("RemoteProtocolError", httpx.RemoteProtocolError("server disconnected")),
    *[(f"HTTP {s}", s) for s in (408, 429, 500, 502, 503, 504)],
]


@pytest.mark.parametrize("name, fault", TRANSIENT, ids=[t[0] for t in TRANSIENT])
def test_transient_faults_are_retried_with_the_same_ids(
    embedder: Embedder, name: str, fault: object
) -> None:
    faults = FaultInjector(faults=[fault, fault])  # type: ignore[list-item]
    col = faults.collection(embedder)
    report = col.upsert(DOCS)
    attempts = faults.upserts
    assert len(attempts) == 3 and report.retries == 2 and report.ok
    assert attempts[0].ids == attempts[1].ids == attempts[2].ids  # the same points each time
    assert len(set(faults.acked)) == len(DOCS)
    record(f"{name} twice on an upsert, then ok", f"retried 2x, same {len(DOCS)} ids resent, "
           f"report ok", len(DOCS), len(set(faults.acked)))


def test_exhausted_retries_raise_transient_error_and_stop(embedder: Embedder) -> None:
    faults = FaultInjector(always=503)
    col = faults.collection(embedder, batch_size=2)
    with pytest.raises(IngestError) as err:
        col.upsert(DOCS)
    report = err.value.report
    assert isinstance(err.value.__cause__, TransientError)
    assert len(faults.upserts) == FAST.attempts  # bounded: exactly the policy's attempts
    assert not report.ok and report.written == 0 and report.failed_ids == ["d0", "d1"]
    assert "0 documents written" in str(err.value) and "d0, d1" in str(err.value)
    record("HTTP 503 on every upsert", f"{FAST.attempts} attempts then IngestError "
           "(0 written, d0, d1 named)", 0, len(set(faults.acked)))


def test_backoff_is_bounded_and_jittered(embedder: Embedder) -> None:
    policy = RetryPolicy(attempts=6, initial_wait=0.05, max_wait=0.2, deadline=30)
    faults = FaultInjector(always=502)
    col = faults.collection(embedder, retry_policy=policy)
    with pytest.raises(IngestError):
        col.upsert(DOCS[:1])
    times = [s.at for s in faults.upserts]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(gaps) == 5
    assert all(g < policy.max_wait + 1.0 for g in gaps)  # generous bound on each wait
    assert len({round(g, 4) for g in gaps}) > 1  # jittered, not a fixed sleep


def test_deadline_stops_retrying(embedder: Embedder) -> None:
    policy = RetryPolicy(attempts=1000, initial_wait=0.05, max_wait=0.1, deadline=0.6)
    faults = FaultInjector(always=500)
    col = faults.collection(embedder, retry_policy=policy)
    start = time.monotonic()
    with pytest.raises(IngestError) as err:
        col.upsert(DOCS[:2])
    elapsed = time.monotonic() - start
    assert elapsed < policy.deadline + 3.0 and 1 < len(faults.upserts) < 1000
    assert isinstance(err.value.__cause__, TransientError)
    record("HTTP 500 forever, deadline 0.6 s", "retried, then gave up at the deadline "
           "(1 < attempts < 1000, elapsed < deadline + 3 s)", 0, len(set(faults.acked)))


def test_retry_after_is_honoured(embedder: Embedder) -> None:
    faults = FaultInjector(faults=[(429, {"Retry-After": "1"})])
    col = faults.collection(embedder)  # FAST backoff is <= 0.05 s: the wait is Retry-After's
    report = col.upsert(DOCS)
    first, second = faults.upserts
    assert second.at - first.at >= 0.95 and report.ok and report.retries == 1
    record("HTTP 429 Retry-After: 1", "waited >= 0.95 s (not the 0.05 s backoff), then written",
           len(DOCS), len(set(faults.acked)))


def test_retry_after_beyond_the_deadline_is_cut_to_it(embedder: Embedder) -> None:
    policy = RetryPolicy(attempts=5, initial_wait=0.01, max_wait=0.05, deadline=1.0)
    faults = FaultInjector(always=(429, {"Retry-After": "60"}))
    col = faults.collection(embedder, retry_policy=policy)
    start = time.monotonic()
    with pytest.raises(IngestError):
        col.upsert(DOCS[:1])
    assert time.monotonic() - start < 5.0  # not 60 s: the deadline wins
    record("HTTP 429 Retry-After: 60, deadline 1 s", "gave up at the deadline, not after 60 s",
           0, len(set(faults.acked)))


PERMANENT = [400, 401, 403, 404, 409, 422]


@pytest.mark.parametrize("status", PERMANENT)
def test_permanent_errors_are_attempted_once(embedder: Embedder, status: int) -> None:
    faults = FaultInjector(always=status)
    col = faults.collection(embedder)
    with pytest.raises(IngestError) as err:
        col.upsert(DOCS)
    cause = err.value.__cause__
    assert isinstance(cause, PermanentError) and cause.status_code == status
    assert f"injected {status}" in str(cause) and f"injected {status}" in str(err.value)
    assert len(faults.upserts) == 1 and err.value.report.retries == 0
    record(f"HTTP {status} on an upsert", "1 attempt, PermanentError with the server's message",
           0, len(set(faults.acked)))


def test_metadata_that_is_not_json_is_refused_before_sending(embedder: Embedder) -> None:
    faults = FaultInjector()
    col = faults.collection(embedder)
    with pytest.raises(IngestError, match="field 'tags' is a set") as err:  # not JSON
        col.upsert([Document("fine text", {"tags": {object()}}, "v1")])
    assert isinstance(err.value.__cause__, InputError)
    assert faults.upserts == [] and err.value.report.failed_ids == ["v1"]
    record("metadata that is not JSON", "refused before sending, field named", 0,
           len(faults.acked))


def test_non_json_200_is_our_clear_error(embedder: Embedder) -> None:
    opening = FaultInjector(always="html", on=lambda m, p: p.endswith("/exists"))
    with pytest.raises(PermanentError, match="not Qdrant's JSON"):
        opening.collection(embedder)
    assert len([s for s in opening.sent if s.path.endswith("/exists")]) == 1
    writing = FaultInjector(always="html")
    col = writing.collection(embedder)
    with pytest.raises(IngestError, match="not Qdrant's JSON") as err:
        col.upsert(DOCS)
    assert len(writing.upserts) == 1 and not err.value.report.ok
    record("200 with an HTML proxy page", "PermanentError 'not Qdrant's JSON', 1 attempt", 0,
           len(writing.acked))


# --- a real loopback server: real sockets, real timeouts, real dropped connections ----------


def _loopback_collection(embedder: Embedder, server: LoopbackFaults) -> Collection:
    client = QdrantClient(url=server.url, timeout=1, check_compatibility=False)
    return Collection("docs", embedder, client=client, retry_policy=FAST)


def test_loopback_delay_drop_and_5xx_then_ok(embedder: Embedder) -> None:
    server = LoopbackFaults([("delay", 2.5), ("drop",), ("status", 503)])
    with server.running():
        col = _loopback_collection(embedder, server)
        report = col.upsert(DOCS)
    ids = [s.ids for s in server.upserts]
    assert len(ids) == 4 and all(i == ids[0] for i in ids) and report.retries == 3
    assert set(server.acked) == {d.point_id for d in DOCS}
    record("loopback server: 2.5 s delay (timeout 1 s), dropped connection, 503, then ok",
           "3 retries of the same ids, written", len(DOCS), len(set(server.acked)))


def test_connection_refused_is_transient(embedder: Embedder) -> None:
    client = QdrantClient(url=f"http://127.0.0.1:{closed_port()}", timeout=1,
                          check_compatibility=False)
    with pytest.raises(TransientError, match="ConnectError"):
        Collection("docs", embedder, client=client, retry_policy=FAST)
    record("nothing listening on the port", "TransientError (ConnectError) after retries", 0, 0)


def test_retry_after_as_an_http_date_is_still_transient(embedder: Embedder) -> None:
    faults = FaultInjector(faults=[(429, {"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"})])
    report = faults.collection(embedder).upsert(DOCS)
    assert report.ok and report.retries == 1 and len(faults.upserts) == 2
    record("HTTP 429 with Retry-After as an HTTP date", "retried with backoff, written",
           len(DOCS), len(set(faults.acked)))
