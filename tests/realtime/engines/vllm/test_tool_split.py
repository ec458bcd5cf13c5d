"""The streaming function-call splitter: Step-Audio calls out of the reply, wherever deltas cut."""

from __future__ import annotations

import itertools

import pytest

from realtime.engines.base import AnswerDelta, InvalidToolCall, ToolCall
from realtime.engines.vllm.tool_split import ReplyEvent, ToolCallSplitter

CALL = '<tool_call>function\nget_weather\n{"city": "Paris"}</tool_call>'
REPLY = f"Let me check.{CALL}"


def split(deltas: list[str], *, cut_short: bool = False) -> list[ReplyEvent]:
    splitter = ToolCallSplitter()
    events = [event for delta in deltas for event in splitter.feed(delta)]
    return events + splitter.finish(cut_short=cut_short)


def spoken(events: list[ReplyEvent]) -> str:
    return "".join(event.text for event in events if isinstance(event, AnswerDelta))


def calls(events: list[ReplyEvent]) -> list[ReplyEvent]:
    return [event for event in events if not isinstance(event, AnswerDelta)]


def test_text_before_a_call_is_reply_and_the_call_is_a_tool_call() -> None:
    events = split([REPLY])
    assert spoken(events) == "Let me check."
    assert calls(events) == [ToolCall("get_weather", '{"city": "Paris"}')]


@pytest.mark.parametrize("cut", range(1, len(REPLY)))
def test_a_reply_cut_in_two_anywhere_splits_the_same(cut: int) -> None:
    events = split([REPLY[:cut], REPLY[cut:]])
    assert spoken(events) == "Let me check."
    assert calls(events) == [ToolCall("get_weather", '{"city": "Paris"}')]


def test_a_reply_fed_one_character_at_a_time_splits_the_same() -> None:
    events = split(list(REPLY + " Done."))
    assert spoken(events) == "Let me check. Done."
    assert calls(events) == [ToolCall("get_weather", '{"city": "Paris"}')]


def test_no_text_of_a_call_is_ever_released_as_reply_text() -> None:
    for cuts in itertools.combinations(range(1, len(CALL)), 2):
        a, b = cuts
        events = split([CALL[:a], CALL[a:b], CALL[b:]])
        assert spoken(events) == "", cuts


def test_several_calls_in_one_reply_come_out_in_order() -> None:
    second = '<tool_call>function\nget_time\n{"zone": "CET"}</tool_call>'
    events = split(["Checking both.", CALL, "\n", second])
    assert calls(events) == [
        ToolCall("get_weather", '{"city": "Paris"}'),
        ToolCall("get_time", '{"zone": "CET"}'),
    ]
    assert spoken(events).strip() == "Checking both."


def test_arguments_that_are_not_json_are_an_invalid_call_that_says_why() -> None:
    events = split(['<tool_call>function\nget_weather\n{"city": Paris}</tool_call>'])
    [invalid] = calls(events)
    assert isinstance(invalid, InvalidToolCall)
    assert invalid.name == "get_weather" and "not valid JSON" in invalid.reason


def test_arguments_that_are_not_an_object_are_invalid() -> None:
    [invalid] = calls(split(["<tool_call>function\nget_weather\n[1, 2]</tool_call>"]))
    assert isinstance(invalid, InvalidToolCall) and "not a JSON object" in invalid.reason


def test_a_call_without_its_type_and_name_lines_is_invalid() -> None:
    [invalid] = calls(split(['<tool_call>{"city": "Paris"}</tool_call>']))
    assert isinstance(invalid, InvalidToolCall) and "function name" in invalid.reason


def test_a_call_with_no_arguments_has_an_empty_object() -> None:
    assert calls(split(["<tool_call>function\nhang_up\n</tool_call>"])) == [
        ToolCall("hang_up", "{}")
    ]


def test_a_call_left_open_at_the_end_is_invalid_unless_the_stream_was_cut_short() -> None:
    open_call = ["Sure.", '<tool_call>function\nget_weather\n{"ci']
    [invalid] = calls(split(open_call))
    assert isinstance(invalid, InvalidToolCall) and "</tool_call>" in invalid.reason
    assert calls(split(open_call, cut_short=True)) == []
    assert spoken(split(open_call, cut_short=True)) == "Sure."


def test_text_that_only_looked_like_a_marker_is_released_at_the_end() -> None:
    events = split(["a < b and <tool"])
    assert spoken(events) == "a < b and <tool"
    assert calls(events) == []


def test_tokens_of_a_call_are_not_counted_as_reply_tokens() -> None:
    splitter = ToolCallSplitter()
    events = splitter.feed("Hi", 1) + splitter.feed(CALL, 9) + splitter.feed(" ok", 1)
    assert [e.tokens for e in events if isinstance(e, AnswerDelta)] == [1, 1]
