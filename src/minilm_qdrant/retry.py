"""Which failures are worth retrying, and the bounded, jittered tenacity policy that retries."""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import httpx
import tenacity
from qdrant_client.common.client_exceptions import QdrantException, ResourceExhaustedResponse
from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

from minilm_qdrant.errors import MiniLMQdrantError, PermanentError, QdrantError, TransientError

T = TypeVar("T")
TRANSIENT_STATUS = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded by attempts and by an overall deadline."""

    attempts: int = 6
    initial_wait: float = 0.5
    max_wait: float = 10.0
    deadline: float = 120.0
    """Seconds from the first attempt after which no new attempt starts."""


def to_error(exc: BaseException, what: str) -> QdrantError:
    """Our typed error for any failure of a Qdrant call, with the server's message."""
    if isinstance(exc, QdrantError):
        return exc
    if isinstance(exc, UnexpectedResponse):
        status = exc.status_code
        kind = TransientError if status in TRANSIENT_STATUS else PermanentError
        return kind(f"{what} failed: HTTP {status}: {_server_message(exc)}", status_code=status)
    if isinstance(exc, ResourceExhaustedResponse) or (
        isinstance(exc, QdrantException) and "Retry-After" in str(exc)
    ):  # qdrant-client's own type for a 429 with a Retry-After header (valid or not)
        return TransientError(f"{what} failed: HTTP 429: {exc}", status_code=429)
    source = exc.source if isinstance(exc, ResponseHandlingException) else exc
    if isinstance(source, httpx.TransportError):
        return TransientError(f"{what} failed: {type(source).__name__}: {source}")
    if _is_transient_grpc(source):
        return TransientError(f"{what} failed: gRPC {source}")
    if isinstance(exc, ResponseHandlingException) or isinstance(source, json.JSONDecodeError):
        # qdrant-client raises the bare JSONDecodeError for a 200 that is not JSON.
        return PermanentError(
            f"{what} failed: the answer was not Qdrant's JSON (a proxy or another service at that "
            f"address?): {type(source).__name__}: {str(source)[:200]}"
        )
    return PermanentError(f"{what} failed: {type(exc).__name__}: {exc}")


def is_transient(exc: BaseException) -> bool:
    return isinstance(to_error(exc, ""), TransientError)


def call(
    fn: Callable[[], T],
    policy: RetryPolicy,
    *,
    what: str,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run ``fn``, retrying transient failures per ``policy``; raise our typed error at the end."""
    start = time.monotonic()

    def wait(state: tenacity.RetryCallState) -> float:
        n = state.attempt_number
        backoff = random.uniform(0, min(policy.max_wait, policy.initial_wait * 2 ** (n - 1)))
        exc = state.outcome.exception() if state.outcome else None
        after = _retry_after(exc) if exc else None
        chosen = max(backoff, after) if after is not None else backoff
        return max(0.0, min(chosen, policy.deadline - (time.monotonic() - start)))

    def before_sleep(state: tenacity.RetryCallState) -> None:
        if on_retry and state.outcome:
            exc = state.outcome.exception()
            if exc is not None:
                on_retry(exc)

    retrying = tenacity.Retrying(
        stop=tenacity.stop_after_attempt(policy.attempts)
        | tenacity.stop_after_delay(policy.deadline),
        wait=wait,
        retry=tenacity.retry_if_exception(is_transient),
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return retrying(fn)
    except MiniLMQdrantError:
        raise  # already ours, with its own message (an input refused before it was sent)
    except Exception as exc:
        raise to_error(exc, what) from exc


def _retry_after(exc: BaseException) -> float | None:
    if isinstance(exc, ResourceExhaustedResponse):
        return max(0.0, float(exc.retry_after_s))
    if isinstance(exc, UnexpectedResponse) and exc.headers is not None:
        value = exc.headers.get("retry-after")
        if value:
            try:
                return max(0.0, float(value))
            except ValueError:
                return None
    return None


def _server_message(exc: UnexpectedResponse) -> str:
    raw = exc.content.decode("utf-8", errors="replace") if exc.content else exc.reason_phrase
    try:
        body = json.loads(raw)
        status = body.get("status") if isinstance(body, dict) else None
        if isinstance(status, dict) and "error" in status:
            return str(status["error"])
    except ValueError:
        pass
    return raw[:500]


def _is_transient_grpc(exc: BaseException) -> bool:
    try:
        import grpc
    except ImportError:  # pragma: no cover - grpc ships with qdrant-client
        return False
    if isinstance(exc, grpc.RpcError) and hasattr(exc, "code"):
        return exc.code() in (
            grpc.StatusCode.UNAVAILABLE,
            grpc.StatusCode.DEADLINE_EXCEEDED,
            grpc.StatusCode.RESOURCE_EXHAUSTED,
        )
    return False
