"""On barge-in the reply's history keeps only what the listener heard."""

from realtime.session.truncation import SpokenSegment, spoken_text


def test_fully_sent_segments_are_kept_whole() -> None:
    segments = [SpokenSegment("Hello there.", 800, True), SpokenSegment("How are you?", 900, True)]
    assert spoken_text(segments, {0: 800, 1: 900}) == "Hello there. How are you?"


def test_segment_in_progress_is_cut_to_the_share_of_audio_sent() -> None:
    segments = [
        SpokenSegment("Hello there.", 800, True),
        SpokenSegment("one two three four five six seven eight", 1000, True),
    ]
    assert spoken_text(segments, {0: 800, 1: 500}) == "Hello there. one two three four"


def test_nothing_sent_means_nothing_heard() -> None:
    assert spoken_text([SpokenSegment("Hello there.", 800, True)], {}) == ""


def test_segments_after_the_cut_are_dropped() -> None:
    segments = [SpokenSegment("a b c d", 400, True), SpokenSegment("e f", 200, True)]
    assert spoken_text(segments, {0: 200}) == "a b"
