"""A session's ``audio.input.noise_reduction``: on, changed and off by session.update, applied
to the audio the turn (and so the engine) gets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.noise import fan_noise
from realtime.conversation import UserAudioItem
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import (
    RecordingSink,
    append,
    session_services,
    until,
    update_input_audio,
)

RATE = 24_000


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as s:
        yield s


def steady_noise() -> np.ndarray:
    """2 s of fan noise at about -26 dBFS, at the session's 24 kHz."""
    noise = fan_noise(2.0) * 1600
    return np.repeat(np.round(noise).astype(np.int16), 3)[: 2 * RATE]  # crude 16 → 48 → 24


async def committed_level_db(session: Session, sink: RecordingSink, pcm: np.ndarray) -> float:
    for start in range(0, len(pcm), 480):
        await append(session, pcm[start : start + 480])
    hand_over(session, json.dumps({"type": "input_audio_buffer.commit"}))
    await until(lambda: any(e["type"] == "input_audio_buffer.committed" for e in sink.events))
    sink.events.clear()
    item = session.conversation.items[-1]
    assert isinstance(item, UserAudioItem)
    audio = np.concatenate(item.chunks)[16_000:]  # past the suppressor's first second of learning
    return float(10 * np.log10(np.mean(audio.astype(np.float64) ** 2) + 1e-9))


async def test_noise_reduction_follows_the_session_setting(services: SessionServices) -> None:
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    try:
        noise = steady_noise()
        off = {"turn_detection": None}
        event = await update_input_audio(session, sink, off)
        assert event["session"]["audio"]["input"]["noise_reduction"] is None
        raw_db = await committed_level_db(session, sink, noise)

        event = await update_input_audio(session, sink, {"noise_reduction": {"type": "near_field"}})
        assert event["session"]["audio"]["input"]["noise_reduction"] == {"type": "near_field"}
        near_db = await committed_level_db(session, sink, noise)

        await update_input_audio(session, sink, {"noise_reduction": {"type": "far_field"}})
        far_db = await committed_level_db(session, sink, noise)

        bad = await update_input_audio(session, sink, {"noise_reduction": {"type": "underwater"}})
        assert bad["type"] == "error"
        assert bad["error"]["param"] == "session.audio.input.noise_reduction.type"

        await update_input_audio(session, sink, {"noise_reduction": None})
        again_db = await committed_level_db(session, sink, noise)
    finally:
        await session.close()
    assert near_db < raw_db - 10
    assert far_db < near_db
    assert abs(again_db - raw_db) < 1.0
