"""Fixtures for the SDK tests: a scripted Realtime server on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.realtime.client.fake_server import FakeRealtimeServer


@pytest.fixture
async def fake_server() -> AsyncIterator[FakeRealtimeServer]:
    async with FakeRealtimeServer() as server:
        yield server
