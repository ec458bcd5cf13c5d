"""HTTP calls to one vLLM replica: a streamed chat completion, a prefill, a health probe.

Every failure becomes a ``ReplicaRequestError`` whose message names the replica and says
what went wrong, and which tells the caller whether another replica may be tried (nothing
was received yet and the fault is the replica's) and whether this replica should be
taken out of rotation until its health check passes again.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator
from dataclasses import dataclass

import httpx
from httpx_sse import EventSource, SSEError

from realtime.engines.base import EngineError
from realtime.engines.vllm.load import MetricsFormatError, ReplicaLoad, parse_vllm_metrics
from realtime.engines.vllm.sse import (
    STREAM_END,
    ChatChunk,
    ChatUsage,
    ChunkFormatError,
    StreamedError,
    error_message,
    parse_chunk,
    parse_completion_usage,
)

_JSON = {"content-type": "application/json", "accept": "text/event-stream, application/json"}


class ReplicaRequestError(EngineError):
    """A request to one replica failed.

    ``retryable``: nothing was received and the replica is at fault, so the same request
    may go to another replica. ``replica_down``: the replica looks broken (unreachable,
    5xx, timed out, cut the stream) and should get no new work until it is healthy again.
    """

    def __init__(self, url: str, problem: str, *, retryable: bool, replica_down: bool) -> None:
        super().__init__(f"vLLM at {url}: {problem}")
        self.url = url
        self.retryable = retryable
        self.replica_down = replica_down


@dataclass(frozen=True)
class StreamTimeouts:
    """``first_token_s``: from sending the request to its first chunk (queueing and
    prefill included); ``stall_s``: between two chunks after that."""

    first_token_s: float
    stall_s: float


def server_root(api_url: str) -> str:
    """``http://host:8000/v1`` -> ``http://host:8000`` (where ``/health`` and ``/metrics`` are)."""
    root = api_url.rstrip("/")
    return root.removesuffix("/v1")


def _status_error(url: str, status: int, body: bytes) -> ReplicaRequestError:
    message = error_message(body)
    server_fault = status >= 500 or status == 429
    return ReplicaRequestError(
        url,
        f"HTTP {status}: {message}",
        retryable=server_fault,
        replica_down=status >= 500,
    )


def _transport_error(url: str, exc: httpx.TransportError, received: bool) -> ReplicaRequestError:
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return ReplicaRequestError(
            url, f"cannot connect ({exc or type(exc).__name__})", retryable=True, replica_down=True
        )
    when = "mid-stream" if received else "before the first token"
    detail = str(exc) or type(exc).__name__
    return ReplicaRequestError(
        url, f"connection failed {when} ({detail})", retryable=not received, replica_down=True
    )


def _streamed_error(url: str, exc: StreamedError, received: bool) -> ReplicaRequestError:
    """An error event inside the stream. Before the first token a server-side one (no code,
    a 5xx, or one vLLM itself calls retryable, as its multimodal-cache misses) may be tried
    again; a 4xx is the request's fault."""
    server_fault = exc.code is None or exc.code >= 500 or "retryable" in str(exc).lower()
    return ReplicaRequestError(
        url,
        f"error in the stream: {exc}",
        retryable=server_fault and not received,
        replica_down=server_fault,
    )


async def stream_chunks(
    http: httpx.AsyncClient,
    api_url: str,
    body: bytes,
    timeouts: StreamTimeouts,
    headers: dict[str, str] | None = None,
) -> AsyncGenerator[ChatChunk, None]:
    """POST a streaming chat completion and yield its chunks until ``[DONE]``.

    Closing the generator closes the HTTP response, and with it the connection: vLLM sees
    the client leave and aborts the request. ``headers`` go with the request (the session's
    routing header).
    """
    url = f"{api_url}/chat/completions"
    received = False  # a token arrived (a failure after that is never retried)
    try:
        async with http.stream(
            "POST", url, content=body, headers={**_JSON, **(headers or {})}
        ) as response:
            if response.status_code != 200:
                raise _status_error(api_url, response.status_code, await response.aread())
            events = EventSource(response).aiter_sse()
            try:
                while True:
                    limit = timeouts.stall_s if received else timeouts.first_token_s
                    try:
                        async with asyncio.timeout(limit):
                            event = await anext(events)
                    except StopAsyncIteration:
                        raise ReplicaRequestError(
                            api_url,
                            "the stream ended before the reply was complete",
                            retryable=not received,
                            replica_down=True,
                        ) from None
                    except TimeoutError:
                        problem = (
                            f"the stream stalled: no chunk for {limit:g} s"
                            if received
                            else f"no first token within {limit:g} s"
                        )
                        raise ReplicaRequestError(
                            api_url,
                            problem,
                            retryable=False,
                            replica_down=True,
                        ) from None
                    if event.data == STREAM_END:
                        return
                    try:
                        chunk = parse_chunk(event.data)
                    except StreamedError as exc:
                        raise _streamed_error(api_url, exc, received) from None
                    except ChunkFormatError as exc:
                        raise ReplicaRequestError(
                            api_url, str(exc), retryable=False, replica_down=False
                        ) from None
                    received = received or chunk.has_tokens
                    yield chunk
            finally:
                await events.aclose()
    except SSEError as exc:
        raise ReplicaRequestError(api_url, str(exc), retryable=False, replica_down=False) from None
    except httpx.TransportError as exc:
        raise _transport_error(api_url, exc, received) from None


async def post_prefill(
    http: httpx.AsyncClient,
    api_url: str,
    body: bytes,
    timeout_s: float,
    headers: dict[str, str] | None = None,
) -> ChatUsage:
    """POST a one-token, non-streaming completion (its prompt lands in the prefix cache).

    Cancelling the call closes the connection, and vLLM aborts the request.
    """
    try:
        async with asyncio.timeout(timeout_s):
            response = await http.post(
                f"{api_url}/chat/completions", content=body, headers={**_JSON, **(headers or {})}
            )
    except TimeoutError:
        raise ReplicaRequestError(
            api_url, f"prefill took over {timeout_s:g} s", retryable=False, replica_down=False
        ) from None
    except httpx.TransportError as exc:
        raise _transport_error(api_url, exc, received=False) from None
    if response.status_code != 200:
        raise _status_error(api_url, response.status_code, response.content)
    try:
        return parse_completion_usage(response.content)
    except ChunkFormatError as exc:
        raise ReplicaRequestError(api_url, str(exc), retryable=False, replica_down=False) from None


async def probe_health(http: httpx.AsyncClient, api_url: str, timeout_s: float) -> str | None:
    """``GET /health`` at the server root: None when healthy, else what is wrong."""
    try:
        response = await http.get(f"{server_root(api_url)}/health", timeout=timeout_s)
    except httpx.TimeoutException:
        return f"health check timed out after {timeout_s:g} s"
    except httpx.TransportError as exc:
        return f"health check failed ({exc or type(exc).__name__})"
    if response.status_code != 200:
        return f"health check answered HTTP {response.status_code}"
    return None


async def probe_load(http: httpx.AsyncClient, api_url: str, timeout_s: float) -> ReplicaLoad | None:
    """The replica's load from ``GET /metrics`` at the server root; None when unreadable."""
    try:
        response = await http.get(f"{server_root(api_url)}/metrics", timeout=timeout_s)
    except httpx.HTTPError:
        return None
    if response.status_code != 200:
        return None
    try:  # a busy server's /metrics runs to hundreds of lines: parse it off the event loop
        return await asyncio.to_thread(parse_vllm_metrics, response.text)
    except MetricsFormatError:
        return None
