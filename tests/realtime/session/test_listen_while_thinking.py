"""Listen while thinking, in-process: the engine sees each closed chunk before the turn ends,
and the turn's final request extends exactly what was prefilled."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.conversation import UserAudioItem
from realtime.engines.base import EngineRequest
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from realtime.turns.input import TurnSettings
from tests.realtime.session.support import RecordingSink, feed, session_services, until

RATE = 24_000
SPEECH = "One two three four five six seven eight nine ten, and then some more words."


@pytest.fixture
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(
        SessionSettings(turns=TurnSettings(prefill_chunk_s=1.0), audio_lead_ms=10_000)
    ) as s:
        yield s


def last_user_audio(request: EngineRequest) -> UserAudioItem:
    item = request.conversation.last_user_item()
    assert isinstance(item, UserAudioItem)
    return item


async def test_the_final_request_extends_the_chunks_prefilled_while_the_user_spoke(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    await feed(session, np.concatenate([synthesize(SPEECH, RATE), silence(1.2, RATE)]))
    await until(lambda: any(e["type"] == "response.done" for e in sink.events))
    await session.close()
    assert engine.prefills, "closed chunks should be prefilled before the turn ends"
    prefilled = last_user_audio(engine.prefills[-1])
    # The request that answered the turn: a speculative one started at an earlier candidate
    # end, and dropped when the user went on, would be the first of the streams.
    final = last_user_audio(engine.streams[-1])
    assert not prefilled.complete and final.complete
    # Only the last chunk is new, unless a chunk closed during the silence window already
    # covers the end of the turn.
    assert len(prefilled.chunks) <= len(final.chunks) <= len(prefilled.chunks) + 1
    for before, after in zip(prefilled.chunks, final.chunks, strict=False):
        assert np.array_equal(before, after)
    assert all(len(chunk) <= 25 * 16_000 for chunk in final.chunks)
    # x_turn says when the first prefill was sent and the last one finished: both before the
    # end of the turn was decided, and listed first, the earliest stages of a turn.
    done = next(e for e in sink.events if e["type"] == "response.done")
    stages = done["response"]["x_turn"]["timings"]["stages_ms"]
    assert stages["prefill_sent"] < stages["prefill_done"] < 0
    assert list(stages)[:2] == ["prefill_sent", "prefill_done"]


async def test_a_manual_commit_during_speech_keeps_the_prefilled_chunks(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    speech = synthesize(SPEECH, RATE)
    await feed(session, speech)
    await until(lambda: engine.prefills)
    hand_over(session, json.dumps({"type": "input_audio_buffer.commit"}))
    hand_over(session, json.dumps({"type": "response.create"}))
    await until(lambda: engine.streams)
    await session.close()
    prefilled = last_user_audio(engine.prefills[-1])
    final = last_user_audio(engine.streams[0])
    assert len(final.chunks) >= len(prefilled.chunks)
    for before, after in zip(prefilled.chunks, final.chunks, strict=False):
        assert np.array_equal(before, after)
    assert "input_audio_buffer.committed" in [event["type"] for event in sink.events]
