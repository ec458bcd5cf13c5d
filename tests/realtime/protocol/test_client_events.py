"""Client events are validated strictly and every rejection says what is wrong."""

from __future__ import annotations

import json

import pytest

from realtime.protocol import client_events as ce
from realtime.protocol.errors import ProtocolError

LIMIT = 64 * 1024


def parse(event: object) -> ce.ClientEvent:
    return ce.parse_client_event(json.dumps(event), LIMIT)


def rejection(raw: str | bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as caught:
        ce.parse_client_event(raw, LIMIT)
    return caught.value


def test_valid_events_parse_into_their_types() -> None:
    assert isinstance(
        parse({"type": "input_audio_buffer.append", "audio": "AAA="}), ce.InputAudioBufferAppend
    )
    assert isinstance(parse({"type": "input_audio_buffer.commit"}), ce.InputAudioBufferCommit)
    assert isinstance(parse({"type": "response.create"}), ce.ResponseCreate)
    create = parse(
        {
            "type": "conversation.item.create",
            "event_id": "e1",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": "hi"}],
            },
        }
    )
    assert isinstance(create, ce.ConversationItemCreate)
    assert create.item.content[0].text == "hi"
    assert create.event_id == "e1"


def test_malformed_json_is_rejected_with_a_clear_message() -> None:
    error = rejection('{"type": "response.create"')
    assert error.code == "invalid_json"
    assert "not valid JSON" in error.message


def test_non_object_and_missing_type_are_rejected() -> None:
    assert rejection("[1, 2]").code == "invalid_event"
    error = rejection('{"audio": "AAA="}')
    assert error.code == "missing_required_parameter"
    assert error.param == "type"


def test_unknown_event_type_names_the_type_and_keeps_the_event_id() -> None:
    error = rejection(json.dumps({"type": "response.explode", "event_id": "evt_9"}))
    assert error.code == "invalid_event_type"
    assert "response.explode" in error.message
    assert error.event_id == "evt_9"


def test_wrong_field_type_names_the_parameter() -> None:
    error = rejection(json.dumps({"type": "input_audio_buffer.append", "audio": 12}))
    assert error.code == "invalid_value"
    assert error.param == "audio"
    assert "'audio'" in error.message


def test_unknown_parameter_is_rejected() -> None:
    error = rejection(json.dumps({"type": "response.cancel", "respnse_id": "x"}))
    assert error.code == "unknown_parameter"
    assert error.param == "respnse_id"


def test_missing_required_field_is_rejected() -> None:
    error = rejection(json.dumps({"type": "conversation.item.delete"}))
    assert error.code == "missing_required_parameter"
    assert error.param == "item_id"


def test_oversize_message_is_rejected_before_parsing() -> None:
    raw = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * (LIMIT + 10)})
    error = rejection(raw)
    assert error.code == "message_too_large"
    assert str(LIMIT) in error.message


def test_invalid_utf8_bytes_are_rejected_as_json_errors() -> None:
    assert rejection(b"\xff\xfe{").code == "invalid_json"


def test_response_create_rejects_a_tool_without_a_name() -> None:
    error = rejection(
        json.dumps({"type": "response.create", "response": {"tools": [{"type": "function"}]}})
    )
    assert error.param is not None and error.param.startswith("response.tools")


def test_a_function_call_output_item_is_parsed() -> None:
    event = parse(
        {
            "type": "conversation.item.create",
            "item": {"type": "function_call_output", "call_id": "call_1", "output": "{}"},
        }
    )
    assert isinstance(event, ce.ConversationItemCreate)
    assert isinstance(event.item, ce.FunctionCallOutputItem) and event.item.call_id == "call_1"


def test_a_message_item_may_leave_out_its_type() -> None:
    event = parse(
        {
            "type": "conversation.item.create",
            "item": {"role": "user", "content": [{"type": "input_text", "text": "hi"}]},
        }
    )
    assert isinstance(event, ce.ConversationItemCreate) and isinstance(event.item, ce.MessageItem)


def test_response_create_takes_tools_and_a_named_tool_choice() -> None:
    tool = {"type": "function", "name": "get_weather", "parameters": {"type": "object"}}
    choice = {"type": "function", "name": "get_weather"}
    event = parse({"type": "response.create", "response": {"tools": [tool], "tool_choice": choice}})
    assert isinstance(event, ce.ResponseCreate) and event.response is not None
    assert event.response.tools is not None and event.response.tools[0].name == "get_weather"


def test_nesting_is_judged_the_same_however_deep_the_callers_stack_is() -> None:
    """The parser's nesting limit is fixed: an event 900 levels deep parses (and keeps its id)
    whether it arrives at the top of the stack or deep inside it, and one past the limit is
    refused the same way at both."""
    nested: object = 0
    for _ in range(450):
        nested = {"a": [nested]}
    deep_event = json.dumps({"type": "session.update", "session": nested, "event_id": "e_deep"})
    too_deep = "[" * 1100 + "]" * 1100

    def at_depth(frames: int) -> tuple[str, str]:
        if frames:
            return at_depth(frames - 1)
        event = ce.parse_client_event(deep_event, LIMIT)
        assert event.event_id == "e_deep"
        return event.type, rejection(too_deep).code

    assert at_depth(0) == at_depth(600) == ("session.update", "invalid_json")
