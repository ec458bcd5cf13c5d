"""Endpointing, in-process: a turn ends with the input frame that completes the silence window,
not up to a VAD chunk or a resampler's hold-back later."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from realtime.turns.input import TurnSettings
from tests.realtime.session.support import RecordingSink, append, session_services, until

FRAME_MS = 20
SILENCE_MS = 500
SENTENCES = (
    "Hello there, how are you doing today?",
    "What is the weather like in Paris?",
    "One two three four five six seven.",
)


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings(turns=TurnSettings(speculative_start=False))) as s:
        yield s


async def stop_position_ms(
    session: Session, sink: RecordingSink, pcm: np.ndarray, rate: int
) -> tuple[float, int]:
    """Feed ``pcm`` frame by frame, letting the VAD catch up and the events reach the sink
    after each; returns how much input (ms) had been sent when speech_stopped came out, and
    its ``audio_end_ms``."""
    frame = rate * FRAME_MS // 1000
    for start in range(0, len(pcm), frame):
        await append(session, pcm[start : start + frame])
        await until(
            lambda: session.input.caught_up and session.outbox.idle, timeout_s=10.0, poll_s=0.001
        )
        stopped = [e for e in sink.events if e["type"] == "input_audio_buffer.speech_stopped"]
        if stopped:
            return 1000.0 * min(start + frame, len(pcm)) / rate, stopped[0]["audio_end_ms"]
    raise AssertionError("the turn never ended")


@pytest.mark.parametrize("rate", [24_000, 16_000])
@pytest.mark.parametrize("sentence", SENTENCES)
async def test_the_turn_ends_with_the_frame_that_completes_the_silence_window(
    services: SessionServices, sentence: str, rate: int
) -> None:
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    try:
        if rate != 24_000:
            update = {"type": "session.update", "session": {"type": "realtime", "audio": {
                "input": {"format": {"type": "audio/pcm", "rate": rate}}}}}  # fmt: skip
            hand_over(session, json.dumps(update))
        pcm = np.concatenate([silence(0.3, rate), synthesize(sentence, rate), silence(2.0, rate)])
        sent_ms, audio_end_ms = await stop_position_ms(session, sink, pcm, rate)
    finally:
        await session.close()
    window_complete_ms = audio_end_ms + SILENCE_MS
    assert window_complete_ms <= sent_ms < window_complete_ms + FRAME_MS
