"""Specification of CosyVoice segment lengths: a first segment long enough, later ones bounded."""

from __future__ import annotations

import pytest

from tts.cosyvoice_segmenting import COSYVOICE_RULES, STREAM_FEED_RULES
from tts.segmenter import TextSegmenter

REPLY = (
    "Sure. Let me check that for you, it will only take a moment. The forecast says it "
    "will be sunny in the morning. Clouds come in around noon. Then, in the late afternoon, "
    "there is a good chance of rain, so you might want to take an umbrella with you when you "
    "leave the house, and perhaps a warm jacket as well, because the temperature will drop "
    "to about 8 degrees Celsius after sunset. Tomorrow looks better."
)


def segments(text: str, rules: object) -> list[str]:
    segmenter = TextSegmenter(rules)  # type: ignore[arg-type]
    cut = [segment for word in text.split(" ") for segment in segmenter.push(word + " ")]
    rest = segmenter.flush()
    return [*cut, rest] if rest else cut


def test_a_one_word_opening_is_not_sent_alone_to_cosyvoice() -> None:
    first = segments(REPLY, COSYVOICE_RULES)[0]
    assert first == "Sure. Let me check that for you,"


def test_segment_lengths_follow_the_cosyvoice_rule() -> None:
    cut = segments(REPLY, COSYVOICE_RULES)
    assert " ".join(cut) == " ".join(REPLY.split())
    assert 30 <= len(cut[0]) <= 90
    for segment in cut[1:-1]:
        assert 80 <= len(segment) <= 160, segment
    assert len(cut[-1]) <= 160


@pytest.mark.parametrize("length", [95, 200, 400])
def test_a_first_sentence_without_pauses_is_cut_within_90_characters(length: int) -> None:
    words = ("word " * (length // 5)).strip() + "."
    first = segments(words + " And more.", COSYVOICE_RULES)[0]
    assert 30 <= len(first) <= 90


def test_bi_streaming_pieces_start_on_the_first_clause_and_then_go_sentence_by_sentence() -> None:
    cut = segments(REPLY, STREAM_FEED_RULES)
    assert cut[:3] == [
        "Sure. Let me check that for you,",
        "it will only take a moment.",
        "The forecast says it will be sunny in the morning.",
    ]
