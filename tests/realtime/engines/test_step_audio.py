"""Step-Audio's text format: a continuation renders as the model would have written it."""

from __future__ import annotations

import pytest

from realtime.engines.base import Continuation, EngineUsage, add_usage
from realtime.engines.step_audio import assistant_text, tool_call_text


def test_a_closed_continuation_is_think_reasoning_close_and_reply() -> None:
    closed = Continuation("I should be brief.", "Sure,", reasoning_closed=True)
    assert assistant_text(closed) == "<think>\nI should be brief.\n</think>\n\nSure,"
    assert assistant_text(Continuation(reasoning_closed=True)) == "<think>\n</think>\n\n"
    done = Continuation("Done.\n", reasoning_closed=True)
    assert assistant_text(done) == "<think>\nDone.\n</think>\n\n"


def test_an_open_continuation_goes_on_reasoning() -> None:
    assert assistant_text(Continuation("Let me see")) == "<think>\nLet me see"


def test_reply_text_needs_a_closed_reasoning_block() -> None:
    with pytest.raises(ValueError, match="reasoning closed"):
        Continuation("thinking", "Sure,")


def test_a_call_is_written_as_step_audio_2_writes_it() -> None:
    assert tool_call_text("get_weather", '{"city": "Paris"}') == (
        '<tool_call>function\nget_weather\n{"city": "Paris"}</tool_call>'
    )


def test_usage_of_a_turn_is_the_sum_of_its_requests() -> None:
    total = add_usage(None, EngineUsage(10, 5, 3, 8))
    total = add_usage(total, EngineUsage(20, 7, 0, 16))
    assert total == EngineUsage(30, 12, 3, 24)
