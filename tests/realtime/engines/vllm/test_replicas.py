"""Several vLLM replicas: health checks, spreading sessions, taking broken ones out."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
import pytest

from realtime.engines.vllm.replicas import NoHealthyReplica, ReplicaSet
from tests.realtime.engines.vllm.fake_vllm import FakeVllmServer
from tests.tts.waiting import wait_until


@pytest.fixture
async def servers() -> AsyncIterator[list[FakeVllmServer]]:
    async with contextlib.AsyncExitStack() as stack:
        yield [await stack.enter_async_context(FakeVllmServer()) for _ in range(3)]


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@contextlib.asynccontextmanager
async def replica_set(
    servers: list[FakeVllmServer], http: httpx.AsyncClient, interval_s: float = 30.0
) -> AsyncIterator[ReplicaSet]:
    replicas = ReplicaSet(
        [server.api_url for server in servers],
        http,
        health_interval_s=interval_s,
        health_timeout_s=2.0,
    )
    await replicas.start()
    try:
        yield replicas
    finally:
        await replicas.aclose()


async def test_sessions_are_spread_evenly_over_healthy_replicas(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    async with replica_set(servers, http) as replicas:
        chosen = [await replicas.acquire() for _ in range(6)]

    assert [replica.sessions for replica in replicas.replicas] == [2, 2, 2]
    assert {replica.url for replica in chosen[:3]} == {server.api_url for server in servers}


async def test_a_released_session_frees_its_replica_for_the_next_one(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    async with replica_set(servers, http) as replicas:
        first, second, third = [await replicas.acquire() for _ in range(3)]
        replicas.release(second)
        fourth = await replicas.acquire()

    assert fourth is second and first is not third


async def test_an_unhealthy_replica_gets_no_sessions(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    servers[1].health_status = 503
    async with replica_set(servers, http) as replicas:
        chosen = {(await replicas.acquire()).url for _ in range(4)}

    assert chosen == {servers[0].api_url, servers[2].api_url}


async def test_a_replica_marked_down_comes_back_when_its_health_check_passes(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    async with replica_set(servers[:2], http, interval_s=0.1) as replicas:
        first = replicas.replicas[0]
        replicas.mark_down(first, "connection refused")
        assert replicas.healthy() == [replicas.replicas[1]]
        await wait_until(lambda: first.healthy, timeout_s=5)

    assert first.problem is None


async def test_the_health_loop_notices_a_replica_going_down(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    async with replica_set(servers[:1], http, interval_s=0.1) as replicas:
        servers[0].health_status = 500
        await wait_until(lambda: not replicas.replicas[0].healthy, timeout_s=5)

    assert replicas.replicas[0].problem == "health check answered HTTP 500"


async def test_with_every_replica_down_a_request_probes_them_at_once(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    async with replica_set(servers[:2], http) as replicas:
        for replica in replicas.replicas:
            replicas.mark_down(replica, "killed")
        checks = servers[1].health_checks
        chosen = await replicas.acquire()

    assert chosen.healthy and servers[1].health_checks == checks + 1


async def test_with_no_replica_up_the_error_lists_each_and_why(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    for server in servers:
        server.health_status = 503
    async with replica_set(servers, http) as replicas:
        with pytest.raises(NoHealthyReplica) as caught:
            await replicas.acquire()

    message = str(caught.value)
    assert all(server.api_url in message for server in servers)
    assert message.count("health check answered HTTP 503") == 3


async def test_a_retry_avoids_the_replica_that_failed_unless_it_is_the_only_one(
    servers: list[FakeVllmServer], http: httpx.AsyncClient
) -> None:
    async with replica_set(servers[:2], http) as replicas:
        failed = await replicas.acquire()
        other = await replicas.acquire([failed])
        assert other is not failed
        assert await replicas.acquire([failed, other]) in (failed, other)
