"""Talking to one vLLM server: chunk parsing, streaming, and what each failure becomes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
from collections.abc import AsyncIterator

import httpx
import pytest

from realtime.engines.vllm.client import (
    ReplicaRequestError,
    StreamTimeouts,
    post_prefill,
    probe_health,
    server_root,
    stream_chunks,
)
from realtime.engines.vllm.sse import (
    ChatChunk,
    ChatUsage,
    ChunkFormatError,
    StreamedError,
    error_message,
    parse_chunk,
)
from tests.realtime.engines.vllm.fake_vllm import FakeVllmServer, Script
from tests.tts.waiting import wait_until

BODY = json.dumps({"model": "Step-Audio-R1", "messages": [], "stream": True}).encode()
TIMEOUTS = StreamTimeouts(first_token_s=5.0, stall_s=5.0)


@pytest.fixture
async def server() -> AsyncIterator[FakeVllmServer]:
    async with FakeVllmServer() as fake:
        yield fake


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None)) as client:
        yield client


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def collect(
    http: httpx.AsyncClient, url: str, timeouts: StreamTimeouts = TIMEOUTS
) -> list[ChatChunk]:
    async with asyncio.timeout(20):
        return [chunk async for chunk in stream_chunks(http, url, BODY, timeouts)]


def test_a_chunk_carries_its_text_its_token_count_and_usage() -> None:
    data = json.dumps(
        {
            "choices": [{"index": 0, "delta": {"content": " word"}, "token_ids": [5, 6]}],
            "usage": {
                "prompt_tokens": 120,
                "completion_tokens": 9,
                "prompt_tokens_details": {"cached_tokens": 96},
            },
        }
    )

    chunk = parse_chunk(data)

    assert chunk == ChatChunk(" word", "", 2, None, ChatUsage(120, 9, 96))


def test_a_chunk_without_token_ids_counts_one_token_per_text_delta() -> None:
    with_text = parse_chunk('{"choices":[{"delta":{"content":"a"},"finish_reason":"stop"}]}')
    role_only = parse_chunk('{"choices":[{"delta":{"role":"assistant","content":""}}]}')

    assert (with_text.tokens, with_text.finish_reason) == (1, "stop")
    assert role_only.tokens == 0 and role_only.usage is None


def test_reasoning_from_a_server_side_reasoning_parser_is_kept_apart() -> None:
    chunk = parse_chunk('{"choices":[{"delta":{"reasoning_content":"hmm"}}]}')

    assert (chunk.reasoning, chunk.content) == ("hmm", "")


def test_an_error_payload_in_the_stream_raises_with_its_message_and_code() -> None:
    with pytest.raises(StreamedError, match="EngineCore died") as caught:
        parse_chunk('{"error":{"message":"EngineCore died","type":"x","code":500}}')
    assert caught.value.code == 500


def test_garbage_is_not_a_chunk() -> None:
    with pytest.raises(ChunkFormatError):
        parse_chunk("not json")


def test_error_bodies_old_and_new_give_their_message() -> None:
    assert error_message(b'{"error":{"message":"too long","code":400}}') == "too long"
    assert error_message(b'{"object":"error","message":"old style","code":400}') == "old style"
    assert error_message(b"Internal Server Error") == "Internal Server Error"


def test_the_server_root_drops_the_api_path() -> None:
    assert server_root("http://vllm:9999/v1") == "http://vllm:9999"
    assert server_root("http://vllm:9999/v1/") == "http://vllm:9999"


async def test_a_stream_yields_every_chunk_until_done(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    chunks = await collect(http, server.api_url)

    assert "".join(chunk.content for chunk in chunks) == "".join(server.default.deltas)
    assert sum(chunk.tokens for chunk in chunks) == len(server.default.deltas)
    assert chunks[-1].usage == ChatUsage(40, len(server.default.deltas), 0)
    assert server.requests[0].finished


async def test_closing_a_stream_early_closes_the_servers_stream(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(deltas=tuple(f" w{i}" for i in range(200)), delta_interval_s=0.01)]
    async with contextlib.aclosing(stream_chunks(http, server.api_url, BODY, TIMEOUTS)) as chunks:
        async for chunk in chunks:
            if chunk.tokens:
                break
    await wait_until(lambda: not server.streams_open, timeout_s=5)

    assert server.requests[0].abandoned


async def test_a_5xx_before_the_stream_may_go_to_another_replica(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(status=503, error_message="loading")]
    with pytest.raises(ReplicaRequestError, match="HTTP 503: loading") as caught:
        await collect(http, server.api_url)

    assert caught.value.retryable and caught.value.replica_down
    assert server.api_url in str(caught.value)


async def test_a_4xx_is_the_requests_fault_and_not_retried(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(status=400, error_message="audio item longer than 30 s")]
    with pytest.raises(ReplicaRequestError, match="audio item longer") as caught:
        await collect(http, server.api_url)

    assert not caught.value.retryable and not caught.value.replica_down


async def test_a_server_that_is_down_may_be_replaced(http: httpx.AsyncClient) -> None:
    url = closed_port_url()
    with pytest.raises(ReplicaRequestError, match="cannot connect") as caught:
        await collect(http, url)

    assert caught.value.retryable and caught.value.replica_down and url in str(caught.value)


async def test_a_connection_cut_mid_stream_is_a_failure_that_is_not_retried(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(cut_after=3)]
    received: list[ChatChunk] = []
    with pytest.raises(ReplicaRequestError, match="mid-stream") as caught:
        async with asyncio.timeout(10):
            async for chunk in stream_chunks(http, server.api_url, BODY, TIMEOUTS):
                received.append(chunk)

    assert received and not caught.value.retryable and caught.value.replica_down


async def test_an_error_inside_the_stream_ends_it_with_the_servers_message(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(error_after=2, error_message="EngineCore encountered an issue")]
    with pytest.raises(ReplicaRequestError, match="EngineCore encountered an issue") as caught:
        await collect(http, server.api_url)

    assert caught.value.replica_down and not caught.value.retryable


async def test_no_first_token_within_the_timeout_is_an_error(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(first_chunk_delay_s=30)]
    with pytest.raises(ReplicaRequestError, match=r"no first token within 0\.3 s") as caught:
        await collect(http, server.api_url, StreamTimeouts(first_token_s=0.3, stall_s=5))

    assert caught.value.replica_down


async def test_a_stream_that_stalls_mid_way_is_an_error(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    server.scripts = [Script(stall_after=2)]
    with pytest.raises(ReplicaRequestError, match=r"stalled: no chunk for 0\.3 s"):
        await collect(http, server.api_url, StreamTimeouts(first_token_s=5, stall_s=0.3))


async def test_a_prefill_returns_the_prompts_usage(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    usage = await post_prefill(http, server.api_url, b'{"stream": false}', timeout_s=5)

    assert usage.prompt_tokens == 40 and server.bodies() == [{"stream": False}]


async def test_health_is_the_status_of_get_health(
    server: FakeVllmServer, http: httpx.AsyncClient
) -> None:
    assert await probe_health(http, server.api_url, 2.0) is None
    server.health_status = 503
    assert await probe_health(http, server.api_url, 2.0) == "health check answered HTTP 503"
    problem = await probe_health(http, closed_port_url(), 2.0)
    assert problem is not None and problem.startswith("health check failed")
