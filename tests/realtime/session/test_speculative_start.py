"""Speculative start, in-process: a reply begun at a pause is sent only if the turn ends
there, and leaves no trace on the wire when the user goes on."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.conversation import UserAudioItem
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import RecordingSink, append, session_services, until

RATE = 24_000
FRAME = RATE // 50


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings(audio_lead_ms=10_000)) as s:
        yield s


async def speak(session: Session, pcm: np.ndarray) -> None:
    for start in range(0, len(pcm), FRAME):
        await append(session, pcm[start : start + FRAME])
        await until(lambda: session.input.caught_up, timeout_s=10.0, poll_s=0.001)


async def test_a_reply_started_at_a_mid_turn_pause_is_dropped_unseen_and_the_real_one_sent(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    engine.streams.clear()
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    try:
        window = {"type": "server_vad", "silence_duration_ms": 900}
        update = {"type": "session.update", "session": {"type": "realtime", "audio": {
            "input": {"turn_detection": window}}}}  # fmt: skip
        hand_over(session, json.dumps(update))
        audio = np.concatenate([
            silence(0.3, RATE), synthesize("One two three", RATE), silence(0.5, RATE),
            synthesize("four five six.", RATE), silence(1.5, RATE),
        ])  # fmt: skip
        await speak(session, audio)
        await until(lambda: any(e["type"] == "response.done" for e in sink.events))
    finally:
        await session.close()
    kinds = [e["type"] for e in sink.events]
    # Two replies were started (at the 500 ms pause, and at the real end), one was seen.
    assert len(engine.streams) == 2
    assert kinds.count("response.created") == 1 and kinds.count("response.done") == 1
    assert kinds.count("input_audio_buffer.committed") == 1
    assert kinds.index("input_audio_buffer.committed") < kinds.index("response.created")
    done = next(e for e in sink.events if e["type"] == "response.done")
    assert done["response"]["status"] == "completed"
    stages = done["response"]["x_turn"]["timings"]["stages_ms"]
    assert stages["speculative_start"] < 0 <= stages["response_created"]
    assert stages["engine_request_sent"] < 0  # the engine was asked before the turn ended
    committed = next(e for e in sink.events if e["type"] == "input_audio_buffer.committed")
    final = engine.streams[-1].conversation.last_user_item()
    assert isinstance(final, UserAudioItem) and final.id == committed["item_id"]
    first = engine.streams[0].conversation.last_user_item()
    assert isinstance(first, UserAudioItem) and first.id == final.id
    assert first.duration_s < final.duration_s - 0.5
