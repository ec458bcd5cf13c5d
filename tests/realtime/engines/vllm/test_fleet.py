"""The engine fleet: retries before the first token, circuit breakers, load-aware routing,
admission by capacity, and the session header a router keys on."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator

import numpy as np
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.base import EngineError, EngineRequest
from realtime.engines.factory import EngineOptions
from realtime.engines.vllm.breaker import BreakerSettings, CircuitBreaker
from realtime.engines.vllm.client import ReplicaRequestError
from realtime.engines.vllm.engine import VllmEngine
from realtime.engines.vllm.load import LoadLimits
from realtime.engines.vllm.options import VllmOptions
from realtime.server.app import create_app
from realtime.server.resources import ServiceOptions
from tests.realtime.engines.vllm.fake_vllm import FakeVllmServer, Script
from tests.realtime.engines.vllm.test_engine import TEXT_TURN, engine_for, run, texts, usage_of

CACHE_MISS = "Multi-modal cache miss for item 0: P0/P1 cache drift; returning a retryable response"


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeVllmServer]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(FakeVllmServer()) for _ in range(2)]


def test_the_breaker_opens_after_failures_in_a_window_and_closes_through_a_trial() -> None:
    now = [0.0]
    breaker = CircuitBreaker(BreakerSettings(failures=3, window_s=10), clock=lambda: now[0])
    assert not breaker.failure() and not breaker.failure()
    now[0] += 11  # the first two fall out of the window
    assert not breaker.failure() and not breaker.failure()
    assert breaker.failure() and breaker.state == "open" and not breaker.allows_requests
    breaker.health_passed()
    assert breaker.state == "half_open" and breaker.allows_requests
    assert breaker.failure() and breaker.state == "open"  # the trial failed
    breaker.health_passed()
    breaker.success()
    assert breaker.state == "closed"


async def test_a_500_before_the_first_token_is_retried_on_the_only_replica(
    servers: list[FakeVllmServer],
) -> None:
    server = servers[0]
    server.scripts = [Script(status=500, error_message="boom")]
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN))
    assert texts(events) == ("Let me think.\n", "Hello there.")
    assert usage_of(events).retries == 1 and len(server.requests) == 2


async def test_a_retryable_error_in_the_stream_before_any_token_is_retried(
    servers: list[FakeVllmServer],
) -> None:
    server = servers[0]
    server.scripts = [Script(error_after=0, error_message=CACHE_MISS)]
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN))
        assert engine.replicas.replicas[0].healthy
    assert texts(events)[1] == "Hello there." and usage_of(events).retries == 1


async def test_a_stall_after_tokens_is_an_error_and_never_retried(
    servers: list[FakeVllmServer],
) -> None:
    server = servers[0]
    server.scripts = [Script(stall_after=3)]
    async with engine_for(server, timeout_s=0.5) as engine:
        with pytest.raises(EngineError, match="stalled"):
            await run(engine.open_session(), EngineRequest(TEXT_TURN))
    assert len(server.requests) == 1


async def test_repeated_failures_open_the_breaker_and_a_passing_health_check_brings_it_back(
    servers: list[FakeVllmServer],
) -> None:
    async with engine_for(*servers) as engine:
        replicas = engine.replicas
        first = replicas.replicas[0]
        down = ReplicaRequestError(first.url, "HTTP 502", retryable=True, replica_down=True)
        client_fault = ReplicaRequestError(first.url, "HTTP 400", retryable=False,
                                           replica_down=False)  # fmt: skip
        for _ in range(10):
            replicas.record_failure(first, client_fault)
        assert first.healthy, "a client-side error never counts"
        for _ in range(3):
            replicas.record_failure(first, down)
        assert not first.healthy and first.breaker.state == "open"
        assert (await replicas.acquire()) is replicas.replicas[1]
        await replicas.check_all()
        assert first.breaker.state == "half_open" and first.healthy
        await run(engine.open_session(), EngineRequest(TEXT_TURN))  # goes to the idler one
        replicas.record_success(first)
        assert first.breaker.state == "closed"


async def test_new_sessions_go_to_the_less_loaded_replica_in_proportion(
    servers: list[FakeVllmServer],
) -> None:
    busy, idle = servers
    busy.running = 10
    async with engine_for(busy, idle) as engine:
        chosen = [await engine.replicas.acquire() for _ in range(20)]
    counts = [sum(1 for r in chosen if r.url == s.api_url) for s in (busy, idle)]
    assert counts == [5, 15]


async def test_a_pinned_session_moves_off_an_overloaded_replica(
    servers: list[FakeVllmServer],
) -> None:
    async with engine_for(*servers) as engine:
        session = engine.open_session()
        await run(session, EngineRequest(TEXT_TURN))
        pinned = session.replica
        assert pinned is not None
        overloaded = servers[pinned.index]
        overloaded.waiting = 50
        await engine.replicas.check_all()
        await run(session, EngineRequest(TEXT_TURN))
        assert session.replica is not pinned
        assert engine.admission_problem() is None
        servers[session.replica.index].kv_usage = 0.99
        await engine.replicas.check_all()
        problem = engine.admission_problem()
    assert problem is not None and "overloaded" in problem


async def test_every_request_carries_the_sessions_header_prefills_included(
    servers: list[FakeVllmServer],
) -> None:
    server = servers[0]
    async with engine_for(server) as engine:
        one, two = engine.open_session(), engine.open_session()
        turn = UserAudioItem("u1", [np.zeros(16_000, np.int16)], complete=False)
        await one.prefill(EngineRequest(Conversation("", (turn,)), max_tokens=1))
        await run(one, EngineRequest(TEXT_TURN))
        await run(two, EngineRequest(TEXT_TURN))
    ids = [recorded.headers.get("x-session-id") for recorded in server.requests]
    assert ids[0] == ids[1] == one.routing_id and ids[2] == two.routing_id
    assert ids[0] != ids[2]


@contextlib.asynccontextmanager
async def service_on(urls: list[str]) -> AsyncIterator[str]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    vllm = VllmOptions(urls=tuple(urls), health_interval_s=0.2,
                       load_limits=LoadLimits(max_waiting=8))  # fmt: skip
    app = create_app(ServiceOptions(engine=EngineOptions(name="vllm", vllm=vllm)))
    server = uvicorn.Server(uvicorn.Config(app, lifespan="on", log_level="warning"))
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(60):
            while not server.started:  # noqa: ASYNC110 - uvicorn offers no event for it
                await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 30)
        sock.close()


async def test_a_saturated_fleet_refuses_new_sessions_with_503_and_retry_after(
    servers: list[FakeVllmServer],
) -> None:
    async with service_on([s.api_url for s in servers]) as url:
        async with connect(url):
            pass
        for server in servers:
            server.waiting = 20
        await asyncio.sleep(0.6)  # the next health round reads the load
        with pytest.raises(InvalidStatus) as refused:
            async with connect(url):
                pass
        response = refused.value.response
        assert response.status_code == 503 and response.headers["Retry-After"].isdigit()
        assert b"engine_at_capacity" in (response.body or b"")
        servers[0].waiting = 0
        await asyncio.sleep(0.6)
        async with connect(url):
            pass


async def test_a_server_at_its_session_capacity_takes_no_new_sessions_but_keeps_its_own(
    servers: list[FakeVllmServer],
) -> None:
    options = VllmOptions(urls=tuple(s.api_url for s in servers), health_interval_s=30.0,
                          load_limits=LoadLimits(max_sessions=1))  # fmt: skip
    engine = VllmEngine(options)
    await engine.start()
    try:
        first, second = engine.open_session(), engine.open_session()
        await run(first, EngineRequest(TEXT_TURN))
        await run(second, EngineRequest(TEXT_TURN))
        assert first.replica is not second.replica
        problem = engine.admission_problem()
        assert problem is not None and "1 sessions from here" in problem
        pinned = first.replica
        await run(first, EngineRequest(TEXT_TURN))
        assert first.replica is pinned  # a full server keeps the sessions it has
        await second.aclose()
        assert engine.admission_problem() is None
    finally:
        await engine.aclose()
