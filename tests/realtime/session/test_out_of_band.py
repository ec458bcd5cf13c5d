"""Out-of-band and shaped responses: ``conversation: "none"``, ``input``, per-response
instructions, text-only output, ``max_output_tokens`` and ``metadata``."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest

from realtime.conversation import SystemTextItem, UserTextItem
from realtime.session.services import SessionServices, SessionSettings
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import running_session, session_services, until
from tests.support.openai_events import validate_server_event


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as s:
        yield s


def user_text(text: str, item_id: str | None = None) -> dict[str, Any]:
    item: dict[str, Any] = {"type": "message", "role": "user",
                            "content": [{"type": "input_text", "text": text}]}  # fmt: skip
    if item_id:
        item["id"] = item_id
    return item


async def test_an_out_of_band_response_stays_out_of_the_conversation(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    engine.streams.clear()
    async with running_session(services) as (session, sink):
        create = {"type": "conversation.item.create", "item": user_text("Hi.", "item_u1")}
        hand_over(session, json.dumps(create))
        response = {
            "conversation": "none",
            "instructions": "Classify the user's mood in one word.",
            "output_modalities": ["text"],
            "max_output_tokens": 50,
            "metadata": {"purpose": "mood"},
            "input": [{"type": "item_reference", "id": "item_u1"}, user_text("And now?")],
        }
        hand_over(session, json.dumps({"type": "response.create",
                                       "response": response}))  # fmt: skip
        await until(lambda: any(e["type"] == "response.done" for e in sink.events))
        assert [i.id for i in session.conversation.items] == ["item_u1"]
    done = next(e for e in sink.events if e["type"] == "response.done")["response"]
    assert done["conversation_id"] is None and done["metadata"] == {"purpose": "mood"}
    assert done["max_output_tokens"] == 50 and done["output_modalities"] == ["text"]
    assert done["output"][0]["content"][0]["text"] == "Okay."
    kinds = [e["type"] for e in sink.events]
    assert kinds.count("conversation.item.added") == 1  # the user item only
    assert "response.output_text.delta" in kinds and "response.output_audio.delta" not in kinds
    request = engine.streams[-1]
    assert request.conversation.instructions == "Classify the user's mood in one word."
    items = request.conversation.items
    assert [type(i) for i in items] == [UserTextItem, UserTextItem]
    assert items[0].id == "item_u1" and items[1].text == "And now?"
    assert request.max_tokens == 50
    for event in sink.events:
        validate_server_event(event)


async def test_an_empty_input_clears_the_context_and_the_default_is_the_conversation(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    engine.streams.clear()
    async with running_session(services) as (session, sink):
        system = {"type": "conversation.item.create", "item": {
            "type": "message", "role": "system",
            "content": [{"type": "input_text", "text": "Be terse."}]}}  # fmt: skip
        hand_over(session, json.dumps(system))
        hand_over(session, json.dumps({"type": "response.create", "response": {
                                       "input": [], "output_modalities": ["text"]}}))  # fmt: skip
        await until(lambda: sum(e["type"] == "response.done" for e in sink.events) == 1)
        hand_over(session, json.dumps({"type": "response.create", "response": {
                                       "output_modalities": ["text"]}}))  # fmt: skip
        await until(lambda: sum(e["type"] == "response.done" for e in sink.events) == 2)
        missing = {"type": "response.create", "event_id": "e1", "response": {
            "input": [{"type": "item_reference", "id": "nope"}]}}  # fmt: skip
        hand_over(session, json.dumps(missing))
        await until(lambda: any(e["type"] == "error" for e in sink.events))
    first, second = engine.streams[-2:]
    assert first.conversation.items == ()
    assert isinstance(second.conversation.items[0], SystemTextItem)
    dones = [e["response"] for e in sink.events if e["type"] == "response.done"]
    assert all(d["conversation_id"] == session.conversation.id for d in dones)
    error = next(e for e in sink.events if e["type"] == "error")["error"]
    assert error["code"] == "item_not_found" and error["event_id"] == "e1"
