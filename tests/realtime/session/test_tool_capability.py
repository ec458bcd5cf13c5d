"""An engine that cannot call tools: tools are accepted and not offered, requiring a call is
an error event, and the session goes on."""

from __future__ import annotations

import json

from realtime.session.services import SessionSettings
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import RecordingSink, session_services, until

WEATHER = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}


async def send(session: Session, event: dict[str, object]) -> None:
    hand_over(session, json.dumps(event))


async def test_requiring_a_call_from_an_engine_without_tools_is_an_error_not_a_crash() -> None:
    async with session_services(SessionSettings()) as services:
        sink = RecordingSink()
        session = Session(services, sink)
        await session.start()
        try:
            off = {"turn_detection": None}
            await send(session, {"type": "session.update", "session": {
                "tools": [WEATHER], "tool_choice": "required", "output_modalities": ["text"],
                "audio": {"input": off}}})  # fmt: skip
            item = {"type": "message", "role": "user",
                    "content": [{"type": "input_text", "text": "hi"}]}  # fmt: skip
            await send(session, {"type": "conversation.item.create", "item": item})
            await send(session, {"type": "response.create", "event_id": "evt_1"})
            await until(lambda: any(e["type"] == "error" for e in sink.events))
            [error] = [e for e in sink.events if e["type"] == "error"]
            assert "cannot call tools" in error["error"]["message"]

            await send(session, {"type": "response.create", "response": {"tool_choice": "auto"}})
            await until(lambda: any(e["type"] == "response.done" for e in sink.events))
            [done] = [e for e in sink.events if e["type"] == "response.done"]
            assert done["response"]["status"] == "completed"
            engine = services.engine.open_session()  # type: ignore[attr-defined]
            assert engine.streams and all(not request.tools for request in engine.streams)
        finally:
            await session.close()
