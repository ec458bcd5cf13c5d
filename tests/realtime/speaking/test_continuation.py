"""Continuation prefixes and reply joining keep the model's text and its word boundaries."""

from __future__ import annotations

from realtime.engines.base import EngineUsage
from realtime.speaking.continuation import ReplyJoiner, add_usage, articulation_prefix


def test_a_prefix_is_think_reasoning_close_and_reply() -> None:
    assert articulation_prefix("I should be brief.", "Sure,") == (
        "<think>\nI should be brief.\n</think>\n\nSure,"
    )
    assert articulation_prefix("", "") == "<think>\n</think>\n\n"
    assert articulation_prefix("Done.\n", "") == "<think>\nDone.\n</think>\n\n"


def test_joined_segments_keep_one_space_between_words() -> None:
    joiner = ReplyJoiner()
    pieces = ["\n\nSure,", " the", " answer ", " is", "42", "."]
    spoken = [joiner.add(piece) for piece in pieces]
    assert spoken == ["Sure,", " the", " answer ", "is", "42", "."]
    assert joiner.text == "Sure, the answer is42."  # no space invented inside a word
    assert joiner.tokens == len(pieces)


def test_a_whitespace_only_piece_at_the_start_says_nothing() -> None:
    joiner = ReplyJoiner()
    assert joiner.add("  ") == ""
    assert joiner.add("Hello") == "Hello"
    assert joiner.text == "Hello"


def test_usage_of_a_turn_is_the_sum_of_its_requests() -> None:
    total = add_usage(None, EngineUsage(10, 5, 3, 8))
    total = add_usage(total, EngineUsage(20, 7, 0, 16))
    assert total == EngineUsage(30, 12, 3, 24)
