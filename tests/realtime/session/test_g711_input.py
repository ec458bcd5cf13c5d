"""G.711 input reaches the conversation as 16 kHz audio, whichever event carries it."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import pytest

from benchmarks.harness.speech import synthesize
from realtime.conversation import UserAudioItem
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import RecordingSink, session_services, until
from tokenizer.g711 import alaw_encode, ulaw_encode


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as s:
        yield s


@pytest.mark.parametrize(
    ("kind", "encode"), [("audio/pcmu", ulaw_encode), ("audio/pcma", alaw_encode)]
)
async def test_g711_items_and_appends_become_16khz_audio(  # type: ignore[no-untyped-def]
    services: SessionServices, kind: str, encode
) -> None:
    speech = synthesize("One two three.", 8_000)
    payload = base64.b64encode(encode(speech)).decode()
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    try:
        audio_input = {"format": {"type": kind}, "turn_detection": None}
        update = {"type": "session.update", "session": {"audio": {"input": audio_input}}}
        hand_over(session, json.dumps(update))
        content = [{"type": "input_audio", "audio": payload}]
        item = {"type": "message", "role": "user", "content": content}
        create = {"type": "conversation.item.create", "item": item}
        hand_over(session, json.dumps(create))
        for event in (
            {"type": "input_audio_buffer.append", "audio": payload},
            {"type": "input_audio_buffer.commit"},
            {"type": "input_audio_buffer.append", "audio": "@@"},
        ):
            hand_over(session, json.dumps(event))
        await until(lambda: sum(e["type"] == "error" for e in sink.events) == 1)
    finally:
        await session.close()
    created, committed = session.conversation.items[-2:]
    for heard in (created, committed):
        assert isinstance(heard, UserAudioItem)
        samples = sum(len(chunk) for chunk in heard.chunks)
        # (a commit leaves what the streaming resampler still holds, up to about 50 ms)
        assert abs(samples - 2 * len(speech)) < 1000, "8 kHz in, 16 kHz in the conversation"
    error = next(e for e in sink.events if e["type"] == "error")
    assert error["error"]["code"] == "invalid_audio"
