"""``conversation.item.retrieve``: the server's copy of an item, user audio included."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import numpy as np
import pytest
from openai.types.realtime import RealtimeServerEvent
from pydantic import TypeAdapter

from benchmarks.harness.speech import synthesize
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
    async with session_services(SessionSettings()) as s:
        yield s


async def test_a_committed_turn_comes_back_with_its_audio_and_a_missing_item_is_an_error(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        await manual_turns(session)
        speech = synthesize("Hello there.", 24_000)
        await append(session, speech)
        hand_over(session, json.dumps({"type": "input_audio_buffer.commit"}))
        await until(lambda: any(e["type"] == "input_audio_buffer.committed" for e in sink.events))
        item_id = next(e for e in sink.events if e["type"] == "input_audio_buffer.committed")[
            "item_id"
        ]
        hand_over(session, json.dumps({"type": "conversation.item.create", "item": {
            "type": "message", "role": "user",
            "content": [{"type": "input_text", "text": "And a typed one."}]}}))  # fmt: skip
        hand_over(session, json.dumps({"type": "conversation.item.retrieve", "item_id": item_id}))
        missing = {"type": "conversation.item.retrieve", "item_id": "nope", "event_id": "e9"}
        hand_over(session, json.dumps(missing))
        await until(lambda: any(e["type"] == "error" for e in sink.events))
    retrieved = next(e for e in sink.events if e["type"] == "conversation.item.retrieved")
    TypeAdapter(RealtimeServerEvent).validate_python(retrieved)  # OpenAI's own shape
    item = retrieved["item"]
    assert item["id"] == item_id and item["role"] == "user" and item["type"] == "message"
    audio = np.frombuffer(base64.b64decode(item["content"][0]["audio"]), dtype=np.int16)
    # The whole utterance, at the session's input rate (24 kHz), give or take the resampler.
    assert abs(len(audio) - len(speech)) < 24_000 * 0.05
    error = next(e for e in sink.events if e["type"] == "error")["error"]
    assert error["code"] == "item_not_found" and error["event_id"] == "e9"
