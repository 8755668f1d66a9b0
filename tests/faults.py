"""Fault injection for the reliability tests, and `record` for the table of what they tried.

Faults are injected at the HTTP transport only: `FaultInjector` is an `httpx.MockTransport`
handler and `LoopbackFaults` a real HTTP server on 127.0.0.1. Neither stores anything nor
pretends to be Qdrant: they record what our client sent and answer the few calls it makes with
the smallest valid acknowledgement (or with the scripted fault).
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
from qdrant_client import QdrantClient
from reliability import Row

from minilm_qdrant import Collection, Embedder
from minilm_qdrant.retry import RetryPolicy

FAST = RetryPolicy(attempts=4, initial_wait=0.01, max_wait=0.05, deadline=10.0)
"""A small policy so retry tests stay fast."""

def as_from_a_terminal() -> None:
    """``preexec_fn`` for a child that a test stops with SIGINT: a shell starts background jobs
    (``cmd &``, nohup) with SIGINT ignored, and Python keeps it so; a terminal's Ctrl-C is not."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_when(proc: Any, sig: int, started: Callable[[], bool],
                   unfinished: Callable[[], bool] = lambda: True, timeout: float = 300) -> None:
    """Send ``sig`` to ``proc`` while its work is demonstrably in progress, whatever the
    machine's speed: poll until ``started()`` (an observable sign of progress), freeze the
    child (SIGSTOP), check ``unfinished()`` while it cannot move, then queue ``sig`` and let
    it go on (SIGCONT): the signal lands at the point that was checked. No sleep decides it."""
    import os
    import signal

    end = time.monotonic() + timeout
    while not started():
        if proc.poll() is not None:
            raise AssertionError(f"the child ended before it started: {proc.communicate()}")
        assert time.monotonic() < end, f"no sign of progress within {timeout}s"
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGSTOP)
    try:
        assert proc.poll() is None and unfinished(), "the child finished before the signal"
        os.kill(proc.pid, sig)
    finally:
        os.kill(proc.pid, signal.SIGCONT)


# --- the table -------------------------------------------------------------------------------


ROWS: list[Row] = []


def record(case: str, outcome: str, expected: int | str, observed: int | str) -> None:
    """Add one row to the reliability table (`reliability`: the run leaves its rows outside
    the checkout; ``python -m tests.reliability`` writes the table). No cell may depend on
    timing: record a count that does as the rule it satisfied (`within`)."""
    ROWS.append(Row(case, outcome, expected, observed))


# --- transport-level fault injector ----------------------------------------------------------

Fault = int | Exception | str | tuple[int, dict[str, str]]
"""A status code, an exception to raise, ``"html"`` (a proxy's 200 page) or (status, headers)."""


@dataclass
class Sent:
    method: str
    path: str
    body: Any
    size: int
    at: float
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def ids(self) -> list[str]:
        return list(self.body["batch"]["ids"]) if isinstance(self.body, dict) else []


def is_upsert(method: str, path: str) -> bool:
    return method == "PUT" and path.endswith("/points")


@dataclass
class FaultInjector:
    """Answers matching requests with ``faults`` in turn (or ``always``), others with an ack."""

    faults: list[Fault] = field(default_factory=list)
    always: Fault | None = None
    on: Callable[[str, str], bool] = is_upsert
    sent: list[Sent] = field(default_factory=list)
    acked: list[str] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        sent = Sent(request.method, request.url.path, body, len(request.content),
                    time.monotonic(), dict(request.headers))
        self.sent.append(sent)
        if self.on(request.method, request.url.path):
            fault = self.faults.pop(0) if self.faults else self.always
            if fault is not None:
                return answer_fault(fault)
        if is_upsert(request.method, request.url.path):
            self.acked.extend(sent.ids)
        return httpx.Response(200, json=ack(request.method, request.url.path))

    @property
    def upserts(self) -> list[Sent]:
        return [s for s in self.sent if is_upsert(s.method, s.path)]

    def client(self, **kwargs: Any) -> QdrantClient:
        return QdrantClient(url="http://127.0.0.1:6333", transport=httpx.MockTransport(self),
                            check_compatibility=False, **kwargs)

    def collection(self, embedder: Embedder, **kwargs: Any) -> Collection:
        kwargs.setdefault("retry_policy", FAST)
        return Collection("docs", embedder, client=self.client(), **kwargs)


def ack(method: str, path: str) -> dict[str, Any]:
    """The smallest valid answer to the calls an ingest makes (nothing is stored)."""
    if path.endswith("/exists"):
        return {"result": {"exists": False}, "status": "ok", "time": 0}
    if is_upsert(method, path):
        return {"result": {"operation_id": 1, "status": "completed"}, "status": "ok", "time": 0}
    if method == "POST" and path.endswith("/points"):  # retrieve by ids: nothing stored here
        return {"result": [], "status": "ok", "time": 0}
    if method == "POST" and path.endswith("/points/count"):
        return {"result": {"count": 0}, "status": "ok", "time": 0}
    return {"result": True, "status": "ok", "time": 0}


def answer_fault(fault: Fault) -> httpx.Response:
    if isinstance(fault, Exception):
        raise fault
    if fault == "html":
        return httpx.Response(200, text="<html><body>Please sign in to the proxy</body></html>",
                              headers={"content-type": "text/html"})
    status, headers = fault if isinstance(fault, tuple) else (fault, {})
    assert isinstance(status, int)
    return httpx.Response(status, headers=headers,
                          json={"status": {"error": f"injected {status}"}, "time": 0})


# --- a real loopback HTTP server ------------------------------------------------------------


class LoopbackFaults:
    """A ThreadingHTTPServer on 127.0.0.1 answering upserts per a script of actions.

    Actions: ``("delay", seconds)`` then ack, ``("drop",)`` closes the connection without an
    answer, ``("status", code)``; when the script is empty it acks.
    """

    def __init__(self, script: list[tuple[Any, ...]]) -> None:
        self.script = list(script)
        self.sent: list[Sent] = []
        self.acked: list[str] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _handle(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length) if length else b""
                path = self.path.split("?")[0]
                sent = Sent(self.command, path, json.loads(raw) if raw else None, len(raw),
                            time.monotonic(), {k.lower(): v for k, v in self.headers.items()})
                outer.sent.append(sent)
                action: tuple[Any, ...] = ("ack",)
                if is_upsert(self.command, path) and outer.script:
                    action = outer.script.pop(0)
                if action[0] == "drop":
                    self.close_connection = True
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if action[0] == "delay":
                    time.sleep(action[1])
                status, body = 200, ack(self.command, path)
                if action[0] == "status":
                    status, body = action[1], {"status": {"error": f"injected {action[1]}"}}
                elif is_upsert(self.command, path):
                    outer.acked.extend(sent.ids)
                data = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except OSError:  # the client gave up (timeout): nothing to answer
                    pass

            do_GET = do_PUT = do_POST = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def upserts(self) -> list[Sent]:
        return [s for s in self.sent if is_upsert(s.method, s.path)]

    @contextmanager
    def running(self) -> Iterator[LoopbackFaults]:
        thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            self.server.shutdown()
            self.server.server_close()


def closed_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
