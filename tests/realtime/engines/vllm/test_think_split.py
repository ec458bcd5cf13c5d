"""The streaming ``</think>`` splitter: reasoning before the marker, answer after, any cut."""

from __future__ import annotations

import itertools
import random

import pytest

from realtime.engines.base import AnswerDelta, ReasoningDelta
from realtime.engines.vllm.think_split import (
    ThinkSplitter,
)

STREAMS = [
    ("The user asks about rice.\nA pilaf works.\n</think>\n\nMake a pilaf.", 9),
    ("short</think>reply", 3),
    ("</think>\n\nStraight to the answer.", 4),
    ("<think>\nopened again by the model</think>\n\nfine", 5),
    ("no marker at all, the stream was cut <", 6),
    ("a </thinking> look-alike and a </ false start</think> then the answer", 8),
    ("  \n leading space</think>   \n  answer with spaces  ", 4),
    ("ends on a partial marker </thi", 3),
]


def run(splitter: ThinkSplitter, pieces: list[tuple[str, int]]) -> tuple[str, str, int, int]:
    reasoning: list[str] = []
    answer: list[str] = []
    for text, tokens in pieces:
        for event in splitter.feed(text, tokens):
            (reasoning if isinstance(event, ReasoningDelta) else answer).append(event.text)
    for event in splitter.finish():
        (reasoning if isinstance(event, ReasoningDelta) else answer).append(event.text)
    return "".join(reasoning), "".join(answer), splitter.reasoning_tokens, splitter.answer_tokens


def random_cut(text: str, tokens: int, rng: random.Random) -> list[tuple[str, int]]:
    """``text`` cut at random places (empty pieces too) with ``tokens`` spread over the pieces."""
    cuts = sorted(rng.randint(0, len(text)) for _ in range(rng.randint(0, len(text))))
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    counts = [0] * len(pieces)
    for _ in range(tokens):
        counts[rng.randrange(len(pieces))] += 1
    return list(zip(pieces, counts, strict=True))


def test_text_before_the_marker_is_reasoning_and_after_it_is_the_answer() -> None:
    reasoning, answer, _, _ = run(ThinkSplitter(), [(STREAMS[0][0], 9)])

    assert reasoning == "The user asks about rice.\nA pilaf works.\n"
    assert answer == "Make a pilaf."


def test_a_marker_cut_across_deltas_is_still_found() -> None:
    pieces = [("thinking ", 1), ("</", 1), ("thi", 1), ("nk", 1), (">", 1), ("\n\nHi", 1)]
    reasoning, answer, _, _ = run(ThinkSplitter(), pieces)

    assert (reasoning, answer) == ("thinking ", "Hi")


def test_a_possible_marker_is_held_back_until_the_next_delta_decides() -> None:
    splitter = ThinkSplitter()

    assert splitter.feed("abc </th") == [ReasoningDelta("abc ", 1)]
    assert splitter.feed("ought") == [ReasoningDelta("</thought", 1)]


def test_a_stray_think_opener_at_the_start_is_dropped() -> None:
    reasoning, answer, _, _ = run(
        ThinkSplitter(), [("<thi", 1), ("nk>", 1), ("\nidea</think>ok", 2)]
    )

    assert (reasoning, answer) == ("idea", "ok")


def test_a_stream_that_never_closes_its_reasoning_is_all_reasoning() -> None:
    reasoning, answer, tokens, _ = run(ThinkSplitter(), [("still thinking </thi", 3)])

    assert (reasoning, answer, tokens) == ("still thinking </thi", "", 3)


def test_a_stream_starting_in_the_answer_keeps_markers_as_text() -> None:
    splitter = ThinkSplitter(reasoning=False, fresh_answer=False)
    reasoning, answer, _, _ = run(splitter, [(" more words", 1), (" and </think> too", 2)])

    assert (reasoning, answer) == ("", " more words and </think> too")


def test_a_continued_reasoning_block_keeps_its_leading_whitespace() -> None:
    splitter = ThinkSplitter(fresh_reasoning=False)
    reasoning, answer, _, _ = run(splitter, [(" and then", 1), ("</think>\n\nyes", 2)])

    assert (reasoning, answer) == (" and then", "yes")


def test_the_token_of_a_delta_holding_the_marker_and_answer_text_is_shared() -> None:
    splitter = ThinkSplitter()
    events = splitter.feed("done</think>\n\nHello there", 3)

    assert events == [ReasoningDelta("done", 1), AnswerDelta("Hello there", 2)]


@pytest.mark.parametrize(("stream", "tokens"), STREAMS)
def test_any_cut_of_a_stream_splits_it_the_same_way(stream: str, tokens: int) -> None:
    whole = run(ThinkSplitter(), [(stream, tokens)])
    rng = random.Random(stream)
    for _ in range(200):
        pieces = random_cut(stream, tokens, rng)
        reasoning, answer, reasoning_tokens, answer_tokens = run(ThinkSplitter(), pieces)
        assert (reasoning, answer) == whole[:2], pieces
        assert reasoning_tokens + answer_tokens == tokens
