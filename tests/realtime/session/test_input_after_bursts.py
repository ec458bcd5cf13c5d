"""A session keeps hearing after audio it received with turn detection off, after a burst of
hostile events, and after a file sent much faster than real time: the next spoken turn starts,
ends and is answered."""

from __future__ import annotations

import asyncio
import base64
import json
import random
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import (
    RecordingSink,
    append,
    manual_turns,
    running_session,
    session_services,
    until,
)

pytestmark = pytest.mark.slow  # speaks at real-time pace

RATE = 24_000
FRAME = RATE // 50  # 20 ms


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as s:  # the default rate limits
        yield s


async def server_vad(session: Session) -> None:
    update = {"type": "session.update", "session": {"type": "realtime", "audio": {"input": {
        "turn_detection": {"type": "server_vad"}}}}}  # fmt: skip
    hand_over(session, json.dumps(update))


async def speak_a_turn(session: Session, sink: RecordingSink) -> None:
    """A sentence and the silence that ends it, in 20 ms appends at real-time pace (what a
    microphone sends; faster would be refused by the rate limits after a burst); asserts the
    turn was heard and answered."""
    before = len(sink.events)
    streams_before = len(services_engine(session).streams)
    pcm = np.concatenate([silence(0.3, RATE), synthesize("What time is it?", RATE),
                          silence(1.5, RATE)])  # fmt: skip
    loop = asyncio.get_running_loop()
    began = loop.time()
    for start in range(0, len(pcm), FRAME):
        await append(session, pcm[start : start + FRAME])
        await asyncio.sleep(max(0.0, began + (start + FRAME) / RATE - loop.time()))
    await until(
        lambda: any(e["type"] == "response.done" for e in sink.events[before:]), timeout_s=20
    )
    types = [e["type"] for e in sink.events[before:]]
    assert "input_audio_buffer.speech_started" in types
    assert "input_audio_buffer.speech_stopped" in types
    assert not [e for e in sink.events[before:] if e["type"] == "error"]
    assert len(services_engine(session).streams) == streams_before + 1


def services_engine(session: Session) -> Any:
    return session._services.engine.session  # the RecordingEngine's one session


async def test_a_burst_with_turn_detection_off_then_clear_then_server_vad_still_hears(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        await manual_turns(session)
        noise = np.random.default_rng(0).integers(-3000, 3000, RATE).astype(np.int16)
        for _ in range(5):  # 5 s in 1 s appends, as fast as they go
            await append(session, noise)
        hand_over(session, json.dumps({"type": "input_audio_buffer.clear"}))
        await server_vad(session)
        await speak_a_turn(session, sink)


async def test_push_to_talk_then_hands_free_on_one_session(services: SessionServices) -> None:
    async with running_session(services) as (session, sink):
        await manual_turns(session)
        spoken = synthesize("This message was recorded with push to talk.", RATE)
        for start in range(0, len(spoken), RATE):  # uploaded in 1 s appends
            await append(session, spoken[start : start + RATE])
        hand_over(session, json.dumps({"type": "input_audio_buffer.commit"}))
        hand_over(session, json.dumps({"type": "response.create"}))
        await until(lambda: any(e["type"] == "response.done" for e in sink.events))
        await server_vad(session)
        await speak_a_turn(session, sink)


def hostile_events(count: int, seed: int) -> list[str]:
    """Valid-shaped and malformed events, turn detection toggled on and off among them."""
    rng = random.Random(seed)
    events: list[str] = []
    for _ in range(count):
        kind = rng.randrange(6)
        if kind == 0:
            pcm = rng.randbytes(2 * rng.randint(1, 4800))
            audio = base64.b64encode(pcm).decode()
            events.append(json.dumps({"type": "input_audio_buffer.append", "audio": audio}))
        elif kind == 1:
            detection = rng.choice([None, {"type": "server_vad"}])
            events.append(json.dumps({"type": "session.update", "session": {"type": "realtime",
                "audio": {"input": {"turn_detection": detection}}}}))  # fmt: skip
        elif kind == 2:
            events.append(json.dumps({"type": "input_audio_buffer.clear"}))
        elif kind == 3:
            events.append("{not json")
        elif kind == 4:
            events.append(json.dumps({"type": f"x.{rng.randint(0, 99)}"}))
        else:
            events.append(json.dumps({"type": "input_audio_buffer.append", "audio": "!!"}))
    return events


async def test_a_hostile_burst_refused_by_the_rate_limits_then_a_normal_turn(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        for event in hostile_events(10_000, seed=21):
            hand_over(session, event)
        refused = session.metrics.rate_limited_total.labels(limit="events")._value.get()
        assert refused > 0, "the burst ran into the rate limits (how far depends on speed)"
        # The event bucket refills at 200 a second (20 ms appends are 50 a second).
        await wait_for_event_budget(session, sink)
        await server_vad(session)
        await speak_a_turn(session, sink)


async def wait_for_event_budget(session: Session, sink: RecordingSink) -> None:
    """Until an event is accepted again (a clear answered with ``cleared``)."""

    async def accepted() -> bool:
        before = len(sink.events)
        hand_over(session, json.dumps({"type": "input_audio_buffer.clear"}))
        await until(lambda: len(sink.events) > before, timeout_s=5)
        return sink.events[-1]["type"] == "input_audio_buffer.cleared"

    for _ in range(100):
        if await accepted():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("the rate limits never let an event through again")


async def test_a_file_sent_at_ten_times_real_time_then_a_turn(services: SessionServices) -> None:
    async with running_session(services) as (session, sink):
        await server_vad(session)
        speech = np.concatenate(
            [synthesize("This is a recording of a long message.", RATE), silence(1.0, RATE)] * 4
        )
        for start in range(0, len(speech), FRAME * 10):  # 200 ms appends, 10 at a time
            await append(session, speech[start : start + FRAME * 10])
            await asyncio.sleep(0.02)
        await until(lambda: session.input.caught_up, timeout_s=20)
        await until(lambda: not session.replying, timeout_s=30)
        await speak_a_turn(session, sink)
