"""Reply joining keeps the model's text and its word boundaries."""

from __future__ import annotations

from realtime.speaking.continuation import ReplyJoiner


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
