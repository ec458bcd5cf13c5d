"""Specification of the streaming text segmenter."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from tts.segmenter import DEFAULT_RULES, SegmenterRules, TextSegmenter

# With every minimum at 1, any boundary the segmenter believes in becomes a cut, so these
# rules show exactly where it would and would not split.
EAGER = SegmenterRules(first_min_chars=1, first_max_chars=60, later_min_chars=1)

PROTECTED_TOKENS = [
    "3.14",
    "1,000,000",
    "10:30 a.m.",
    "$4.99",
    "2.5%",
    "Dr. Smith",
    "Mr. Brown",
    "Mrs. Green",
    "Ms. White",
    "Prof. Plum",
    "St. Louis",
    "e.g. apples",
    "i.e. pears",
    "vs. them",
    "U.S. economy",
    "No. 5",
    "Fig. 3",
    "J. R. R. Tolkien",
    "wait...",
    "https://example.com/a.b?q=1",
    "a.b@c.org",
]

PIECES = [
    "Good question, let me explain how it works.",
    "Dr. Smith met Mr. Brown and Mrs. Green at 10:30 a.m. in St. Louis.",
    "Pi is about 3.14, and a million is written 1,000,000.",
    "It costs $4.99, i.e. pears are cheap, e.g. apples cost 2.5% more.",
    "See Fig. 3 and No. 5 for the U.S. economy, us vs. them.",
    "J. R. R. Tolkien wrote it.",
    "Hmm, wait... what?!",
    '"Really?" she asked.',
    "(It was late.)",
    "Ms. White and Prof. Plum left at 5 p.m. Then it rained.",
    "Visit https://example.com/a.b?q=1 or write to a.b@c.org today.",
    "你好，世界。今天天气很好！",
    "the range 1990–1995 — a long time",
    "and then",
    "a very long stretch of words without any punctuation that keeps going and going "
    "for much longer than any sentence limit would allow in a single segment of speech "
    "because it simply never stops and never ends and keeps on rolling along forever "
    "until at last it does stop right here",
]
SEPARATORS = [" ", "  ", "\n", "\n\n", " \t ", "\r\n", " \n", "\t \r\n  "]


def segment(text: str, cut: Callable[[str], list[str]], rules: SegmenterRules) -> list[str]:
    """Feed ``text`` in the deltas ``cut`` makes of it; return all segments."""
    segmenter = TextSegmenter(rules)
    segments: list[str] = []
    for delta in cut(text):
        segments += segmenter.push(delta)
    if (rest := segmenter.flush()) is not None:
        segments.append(rest)
    return segments


def one_char_at_a_time(text: str) -> list[str]:
    return list(text)


def whole(text: str) -> list[str]:
    return [text]


def random_deltas(seed: int) -> Callable[[str], list[str]]:
    def cut(text: str) -> list[str]:
        rng = random.Random(seed)
        deltas, position = [], 0
        while position < len(text):
            size = rng.randint(1, 12)
            deltas.append(text[position : position + size])
            position += size
        return deltas

    return cut


def random_text(rng: random.Random) -> str:
    pieces = [rng.choice(PIECES) for _ in range(rng.randint(1, 9))]
    text = "".join(piece + rng.choice(SEPARATORS) for piece in pieces)
    return rng.choice(["", " ", "\n"]) + text


def without_whitespace(text: str) -> str:
    return "".join(text.split())


def normalised(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.parametrize("rules", [DEFAULT_RULES, EAGER], ids=["default", "eager"])
def test_segments_do_not_depend_on_how_the_text_is_split_into_deltas(
    rules: SegmenterRules,
) -> None:
    rng = random.Random(20240601)
    for _ in range(60):
        text = random_text(rng)
        expected = segment(text, whole, rules)
        assert segment(text, one_char_at_a_time, rules) == expected, text
        for seed in range(3):
            assert segment(text, random_deltas(seed), rules) == expected, text


@pytest.mark.parametrize("rules", [DEFAULT_RULES, EAGER], ids=["default", "eager"])
def test_segments_keep_every_character_and_respect_the_length_limits(
    rules: SegmenterRules,
) -> None:
    rng = random.Random(7)
    for _ in range(60):
        text = random_text(rng)
        segments = segment(text, random_deltas(rng.randint(0, 99)), rules)
        assert without_whitespace("".join(segments)) == without_whitespace(text)
        assert all(part == normalised(part) and part for part in segments)
        assert len(segments[0]) <= rules.first_max_chars
        assert all(len(part) <= rules.later_max_chars for part in segments[1:])


@pytest.mark.parametrize("rules", [DEFAULT_RULES, EAGER], ids=["default", "eager"])
def test_no_segment_boundary_falls_inside_a_number_abbreviation_url_or_ellipsis(
    rules: SegmenterRules,
) -> None:
    rng = random.Random(99)
    for _ in range(60):
        text = random_text(rng)
        segments = segment(text, random_deltas(rng.randint(0, 99)), rules)
        for token in PROTECTED_TOKENS:
            in_text = normalised(text).count(token)
            assert sum(part.count(token) for part in segments) == in_text, (token, segments)


def test_first_segment_is_a_short_clause_and_later_ones_whole_sentences() -> None:
    text = (
        "Good question, let me explain how it works. Yes. It is simple. "
        "The segmenter cuts text into sentences, and merges short ones. Done."
    )
    assert segment(text, one_char_at_a_time, DEFAULT_RULES) == [
        "Good question,",
        "let me explain how it works. Yes. It is simple.",
        "The segmenter cuts text into sentences, and merges short ones.",
        "Done.",
    ]


def test_first_segment_waits_for_its_minimum_length() -> None:
    assert segment("Oh, well, that is fine. Yes.", whole, DEFAULT_RULES)[0] == (
        "Oh, well, that is fine."
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I met Dr. Smith today. He was fine.", ["I met Dr. Smith today.", "He was fine."]),
        ("Mr. and Mrs. Brown and Ms. Lee came.", ["Mr. and Mrs. Brown and Ms. Lee came."]),
        ("Prof. Plum lives on Main St. near us.", ["Prof. Plum lives on Main St. near us."]),
        ("Pi is 3.14 exactly. Really.", ["Pi is 3.14 exactly.", "Really."]),
        ("We sold 1,000,000 copies.", ["We sold 1,000,000 copies."]),
        ("Meet at 10:30 sharp.", ["Meet at 10:30 sharp."]),
        ("It costs $4.99 now.", ["It costs $4.99 now."]),
        ("Rates rose 2.5% today.", ["Rates rose 2.5% today."]),
        ("Fruit, e.g. apples, i.e. food.", ["Fruit,", "e.g. apples, i.e. food."]),
        ("Cats vs. dogs again.", ["Cats vs. dogs again."]),
        ("The U.S. economy grew.", ["The U.S. economy grew."]),
        ("See No. 5 and Fig. 3 here.", ["See No. 5 and Fig. 3 here."]),
        ("J. R. R. Tolkien wrote it.", ["J. R. R. Tolkien wrote it."]),
        ("Bread, milk etc. are sold.", ["Bread,", "milk etc. are sold."]),
        ("Bread and milk etc. Then we left.", ["Bread and milk etc.", "Then we left."]),
        ("We met at 5 p.m. Then we left.", ["We met at 5 p.m.", "Then we left."]),
        ("Go to https://example.com/a.b?q=1 now.", ["Go to https://example.com/a.b?q=1 now."]),
        ("Mail a.b@c.org now. Thanks.", ["Mail a.b@c.org now.", "Thanks."]),
        ("I said no. Then I left.", ["I said no.", "Then I left."]),
        ("Wait... what?! No way.", ["Wait...", "what?!", "No way."]),
        ('He asked "why?!" Then he left.', ['He asked "why?!"', "Then he left."]),
        ('"Really?" she asked. Yes.', ['"Really?"', "she asked.", "Yes."]),
        ("(It was late.) We slept.", ["(It was late.)", "We slept."]),
        ("From 1990–1995 it grew.", ["From 1990–1995 it grew."]),
        ("It grew—then it fell.", ["It grew—", "then it fell."]),
        ("First line\nSecond line\r\nThird", ["First line", "Second line", "Third"]),
        ("你好，世界。今天很好！", ["你好，", "世界。", "今天很好！"]),
        ("他说：“走吧。”然后走了。", ["他说：", "“走吧。”", "然后走了。"]),
    ],
)
def test_where_segments_end(text: str, expected: list[str]) -> None:
    assert segment(text, one_char_at_a_time, EAGER) == expected
    assert segment(text, whole, EAGER) == expected


def test_period_after_a_digit_is_not_a_cut_until_the_next_character_says_so() -> None:
    segmenter = TextSegmenter(EAGER)
    assert segmenter.push("Pi is about 3.") == []
    assert segmenter.pending == "Pi is about 3."
    assert segmenter.push("14. Next") == ["Pi is about 3.14."]
    assert segmenter.pending == "Next"


def test_a_line_break_after_a_space_in_a_later_delta_is_still_a_boundary() -> None:
    segmenter = TextSegmenter(EAGER)
    assert segmenter.push("First line ") == []
    assert segmenter.push("\nSecond") == ["First line"]


def test_whitespace_is_normalised() -> None:
    text = "  Hello \t there,\n\n   my   friend.  How\tare   you?  "
    assert segment(text, one_char_at_a_time, DEFAULT_RULES) == [
        "Hello there,",
        "my friend. How are you?",
    ]


def test_long_sentence_without_punctuation_is_cut_at_the_last_space_before_the_limit() -> None:
    words = [f"word{number}" for number in range(120)]
    segments = segment(" ".join(words), one_char_at_a_time, DEFAULT_RULES)
    assert len(segments) > 3
    assert len(segments[0]) <= DEFAULT_RULES.first_max_chars
    assert all(len(part) <= DEFAULT_RULES.later_max_chars for part in segments)
    # Each cut is at the last space that fits: the next word would not have.
    assert len(segments[0]) + 1 + len(segments[1].split()[0]) > DEFAULT_RULES.first_max_chars
    assert len(segments[1]) + 1 + len(segments[2].split()[0]) > DEFAULT_RULES.later_max_chars
    assert [word for part in segments for word in part.split()] == words


def test_limit_cut_prefers_the_last_sentence_end_over_a_space() -> None:
    sentence = "Short one. Then " + " ".join(["filler"] * 60)
    segments = segment("Hello there, friend. " + sentence, whole, DEFAULT_RULES)
    assert segments[1] == "friend. Short one."


def test_limit_cut_never_separates_an_abbreviation_from_its_word() -> None:
    rules = SegmenterRules(first_min_chars=12, first_max_chars=30)
    # The last space before 30 characters follows "Dr.".
    segments = segment("aaaa bbbb cccc dddd eeee Dr. Smith went home", whole, rules)
    assert segments[0] == "aaaa bbbb cccc dddd eeee"
    assert segments[1].startswith("Dr. Smith")


def test_a_word_longer_than_the_limit_is_cut_hard() -> None:
    segments = segment("x" * 150, whole, DEFAULT_RULES)
    assert segments == ["x" * 60, "x" * 90]


def test_flush_returns_the_rest_and_starts_a_new_text() -> None:
    segmenter = TextSegmenter(DEFAULT_RULES)
    assert segmenter.push("Good question, let me see") == ["Good question,"]
    assert segmenter.flush() == "let me see"
    assert segmenter.flush() is None
    assert segmenter.push("Another answer, again here") == ["Another answer,"]


def test_reset_forgets_pending_text() -> None:
    segmenter = TextSegmenter(DEFAULT_RULES)
    segmenter.push("Good question, let me see")
    segmenter.reset()
    assert segmenter.pending == ""
    assert segmenter.flush() is None


def test_whitespace_only_text_gives_no_segment() -> None:
    assert segment(" \n\t ", one_char_at_a_time, DEFAULT_RULES) == []


def test_rules_must_be_consistent() -> None:
    with pytest.raises(ValueError):
        SegmenterRules(first_min_chars=80, first_max_chars=60)
    with pytest.raises(ValueError):
        SegmenterRules(later_min_chars=0)


def test_endless_punctuation_never_holds_more_than_a_segment() -> None:
    segmenter = TextSegmenter(DEFAULT_RULES)
    for char in "!" * 1000:
        segmenter.push(char)
        assert len(segmenter.pending) <= DEFAULT_RULES.later_max_chars + 1
