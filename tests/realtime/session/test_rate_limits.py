"""A session's rate limits: what is over gets an error event; what came before stays."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from realtime.session.rate_limits import RateLimits
from realtime.session.services import SessionServices, SessionSettings
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import (
    append,
    manual_turns,
    running_session,
    session_services,
    until,
)


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    limits = RateLimits(events_per_s=1, event_burst=20, audio_speed=1, audio_burst_s=2)
    async with session_services(SessionSettings(rate_limits=limits)) as s:
        yield s


async def test_audio_much_faster_than_real_time_is_refused_and_what_came_before_kept(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        await manual_turns(session)
        second = np.zeros(24_000, dtype=np.int16)
        for _ in range(4):  # 4 s of audio at once: 2 s of burst, the rest refused
            await append(session, second)
        await until(lambda: any(e["type"] == "error" for e in sink.events), timeout_s=5)
        codes = [e["error"]["code"] for e in sink.events if e["type"] == "error"]
        assert codes and set(codes) == {"rate_limit_exceeded"}
        # The two seconds accepted, less what the resampler still holds back (under 20 ms).
        assert 2 * 16_000 - 320 <= session.input.held_samples() <= 2 * 16_000
        for _ in range(20):  # past the event burst
            hand_over(session, json.dumps({"type": "input_audio_buffer.clear"}))
        await until(lambda: len([e for e in sink.events if e["type"] == "error"]) > 2)
        assert session.metrics.rate_limited_total.labels(limit="events")._value.get() >= 1
