"""Client JSON is read at the transport's edge: the session gets a typed event or the reason
there is none, after the raw message was counted against its rate limits."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from realtime.protocol import client_events as ce
from realtime.protocol.errors import ProtocolError
from realtime.session.rate_limits import RateLimits
from realtime.session.services import SessionServices, SessionSettings
from realtime.transports.client_input import hand_over, read_client_event
from tests.realtime.session.support import running_session, session_services, until

CLEAR = json.dumps({"type": "input_audio_buffer.clear", "event_id": "evt_1"})


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    limits = RateLimits(events_per_s=0.01, event_burst=3)
    async with session_services(SessionSettings(rate_limits=limits, max_event_bytes=200)) as s:
        yield s


async def test_a_message_becomes_a_typed_event_or_the_reason_it_is_none(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, _):
        event = read_client_event(session, CLEAR)
        not_json = read_client_event(session, "{nope")
        too_large = read_client_event(session, json.dumps({"type": "x", "pad": "a" * 300}))

    assert isinstance(event, ce.InputAudioBufferClear) and event.event_id == "evt_1"
    assert isinstance(not_json, ProtocolError) and not_json.code == "invalid_json"
    assert isinstance(too_large, ProtocolError) and too_large.code == "message_too_large"


async def test_past_the_rate_limit_a_message_is_refused_before_it_is_parsed(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, _):
        for _ in range(3):
            assert not isinstance(read_client_event(session, CLEAR), ProtocolError)
        refused = read_client_event(session, "{nope")

    assert isinstance(refused, ProtocolError) and refused.code == "rate_limit_exceeded"


async def test_a_bad_message_gets_an_error_event_and_the_next_one_is_handled(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        hand_over(session, json.dumps({"type": "response.nope", "event_id": "evt_0"}))
        hand_over(session, CLEAR)
        await until(lambda: any(e["type"] == "input_audio_buffer.cleared" for e in sink.events))

    [error] = [e["error"] for e in sink.events if e["type"] == "error"]
    assert (error["code"], error["event_id"]) == ("invalid_event_type", "evt_0")
