"""TurnDetector: server_vad speech start/stop from a sequence of chunk probabilities."""

from __future__ import annotations

import pytest

from realtime.turns.turn_detector import (
    SpeechStarted,
    SpeechStopped,
    TurnDetectionParams,
    TurnDetector,
)
from realtime.turns.vad import VadChunkResult

CHUNK = 512
VOICED, SILENT, BAND = 0.9, 0.05, 0.4  # BAND: between threshold - 0.15 and threshold (0.5)


def feed(
    detector: TurnDetector, probabilities: list[float], first_chunk: int = 0
) -> list[tuple[int, SpeechStarted | SpeechStopped]]:
    """Feeds chunk ``first_chunk + i`` with ``probabilities[i]``; returns (chunk, event) pairs."""
    events: list[tuple[int, SpeechStarted | SpeechStopped]] = []
    for offset, probability in enumerate(probabilities):
        index = first_chunk + offset
        result = VadChunkResult(end_sample=(index + 1) * CHUNK, probability=probability)
        events.extend((index, event) for event in detector.update(result))
    return events


def test_defaults_are_openai_realtime_server_vad_defaults() -> None:
    params = TurnDetectionParams()
    assert (params.threshold, params.prefix_padding_ms, params.silence_duration_ms) == (
        0.5,
        300,
        500,
    )
    assert params.negative_threshold == pytest.approx(0.35)


def test_speech_starts_once_voiced_chunks_last_min_speech_ms_and_dates_from_the_first() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=64))  # 1024 samples: 2 chunks
    events = feed(detector, [SILENT, SILENT, VOICED, VOICED, VOICED])
    assert events == [(3, SpeechStarted(start_sample=2 * CHUNK))]
    assert detector.in_speech


def test_isolated_voiced_chunks_shorter_than_min_speech_are_ignored() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=96))  # 3 chunks
    assert feed(detector, [VOICED, VOICED, SILENT, VOICED, SILENT, VOICED, VOICED, BAND]) == []
    assert not detector.in_speech


def test_zero_min_speech_starts_on_the_first_voiced_chunk() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=0))
    assert feed(detector, [SILENT, VOICED]) == [(1, SpeechStarted(start_sample=CHUNK))]


def test_probability_equal_to_threshold_is_voiced_and_just_below_is_not() -> None:
    detector = TurnDetector(TurnDetectionParams(threshold=0.6, min_speech_ms=0))
    assert feed(detector, [0.599]) == []
    assert feed(detector, [0.6], first_chunk=1) == [(1, SpeechStarted(start_sample=CHUNK))]


def test_speech_stops_after_silence_duration_with_exact_sample_indices() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=500, min_speech_ms=0))
    # 500 ms = 8000 samples: the silence window completes on the 16th silent chunk.
    events = feed(detector, [VOICED] * 10 + [SILENT] * 20)
    assert events == [
        (0, SpeechStarted(start_sample=0)),
        (25, SpeechStopped(end_sample=10 * CHUNK, detected_sample=26 * CHUNK)),
    ]
    assert not detector.in_speech


def test_one_chunk_short_of_the_silence_duration_does_not_stop_speech() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=512, min_speech_ms=0))
    events = feed(detector, [VOICED] + [SILENT] * 15 + [VOICED] + [SILENT] * 16)
    assert events == [
        (0, SpeechStarted(start_sample=0)),
        (32, SpeechStopped(end_sample=17 * CHUNK, detected_sample=33 * CHUNK)),
    ]


def test_chunks_in_the_hysteresis_band_keep_speech_going() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=320, min_speech_ms=0))
    events = feed(detector, [VOICED] * 2 + [BAND] * 30 + [SILENT] * 10)
    assert events == [
        (0, SpeechStarted(start_sample=0)),
        (41, SpeechStopped(end_sample=32 * CHUNK, detected_sample=42 * CHUNK)),
    ]


def test_band_chunks_do_not_interrupt_a_silence_run() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=320, min_speech_ms=0))
    events = feed(detector, [VOICED] * 2 + [SILENT] * 3 + [BAND] * 4 + [SILENT] * 5)
    assert events == [
        (0, SpeechStarted(start_sample=0)),
        (11, SpeechStopped(end_sample=2 * CHUNK, detected_sample=12 * CHUNK)),
    ]


def test_band_chunks_do_not_start_speech() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=0))
    assert feed(detector, [BAND] * 20) == []


def test_negative_threshold_is_floored_for_low_thresholds() -> None:
    params = TurnDetectionParams(threshold=0.1, min_speech_ms=0, silence_duration_ms=0)
    assert params.negative_threshold == pytest.approx(0.01)
    detector = TurnDetector(params)
    events = feed(detector, [0.2, 0.02, 0.009])
    assert events == [
        (0, SpeechStarted(start_sample=0)),
        (2, SpeechStopped(end_sample=2 * CHUNK, detected_sample=3 * CHUNK)),
    ]


def test_speech_can_start_again_after_it_stopped() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=100, min_speech_ms=32))
    events = feed(detector, [VOICED] * 3 + [SILENT] * 4 + [SILENT] * 3 + [VOICED] * 2)
    assert [event for _, event in events] == [
        SpeechStarted(start_sample=0),
        SpeechStopped(end_sample=3 * CHUNK, detected_sample=7 * CHUNK),
        SpeechStarted(start_sample=10 * CHUNK),
    ]


def test_shorter_silence_duration_set_mid_silence_stops_speech_at_the_next_chunk() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=1000, min_speech_ms=0))
    assert len(feed(detector, [VOICED] * 4 + [SILENT] * 12)) == 1
    detector.params = TurnDetectionParams(silence_duration_ms=200, min_speech_ms=0)
    assert feed(detector, [SILENT], first_chunk=16) == [
        (16, SpeechStopped(end_sample=4 * CHUNK, detected_sample=17 * CHUNK))
    ]


def test_raised_threshold_applies_to_the_next_chunk_during_speech() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=0, silence_duration_ms=64))
    feed(detector, [0.7, 0.7])
    detector.params = TurnDetectionParams(threshold=0.9, min_speech_ms=0, silence_duration_ms=64)
    # 0.7 is now below 0.9 - 0.15: silence.
    assert feed(detector, [0.7, 0.7], first_chunk=2) == [
        (3, SpeechStopped(end_sample=2 * CHUNK, detected_sample=4 * CHUNK))
    ]


def test_reset_returns_to_idle_without_events() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=0, silence_duration_ms=64))
    feed(detector, [VOICED] * 3)
    detector.reset()
    assert not detector.in_speech
    assert feed(detector, [SILENT] * 10, first_chunk=3) == []
    assert feed(detector, [VOICED], first_chunk=13) == [(13, SpeechStarted(13 * CHUNK))]


def test_voiced_run_interrupted_by_reset_starts_over() -> None:
    detector = TurnDetector(TurnDetectionParams(min_speech_ms=64))
    feed(detector, [VOICED])
    detector.reset()
    assert feed(detector, [VOICED], first_chunk=1) == []
    assert feed(detector, [VOICED], first_chunk=2) == [(2, SpeechStarted(CHUNK))]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"threshold": 0.0},
        {"threshold": 1.5},
        {"silence_duration_ms": -1},
        {"prefix_padding_ms": -1},
        {"min_speech_ms": -5},
    ],
)
def test_invalid_params_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        TurnDetectionParams(**kwargs)  # type: ignore[arg-type]


# -- the end of speech refined from the audio's levels ---------------------------------

LOUD = (-20.0, -20.0, -20.0, -20.0)
QUIET = (-95.0, -95.0, -95.0, -95.0)


def _levels_run(detector: TurnDetector, items: list[tuple[float, tuple[float, ...]]]) -> list:
    events = []
    for index, (probability, levels) in enumerate(items, start=1):
        events += detector.update(VadChunkResult(index * 512, probability, levels))
    return events


def test_silence_window_counts_from_where_the_voice_ended_not_from_silero_s_lagging_fall() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=256, min_speech_ms=32))
    speech = [(0.99, LOUD)] * 10
    # silero keeps scoring two quiet chunks as speech before its probability falls.
    trailing = [(0.9, QUIET), (0.6, QUIET)]
    silence = [(0.01, QUIET)] * 20
    events = _levels_run(detector, speech + trailing + silence)
    stopped = [e for e in events if isinstance(e, SpeechStopped)]
    assert len(stopped) == 1
    voice_end = 10 * 512
    assert stopped[0].end_sample == voice_end
    # Stopped at the first chunk boundary 256 ms after the voice ended, not after the fall.
    assert stopped[0].detected_sample == voice_end + 256 * 16


def test_refinement_looks_back_at_most_a_bounded_time() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=256, min_speech_ms=32))
    speech = [(0.99, LOUD)] * 10
    long_quiet_tail = [(0.9, QUIET)] * 6  # silero says speech for 192 ms of quiet audio
    events = _levels_run(detector, speech + long_quiet_tail + [(0.01, QUIET)] * 20)
    stopped = next(e for e in events if isinstance(e, SpeechStopped))
    silence_run_start = 16 * 512
    assert stopped.end_sample == silence_run_start - 96 * 16


def test_quiet_speech_within_the_voiced_range_is_still_speech() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=256, min_speech_ms=32))
    speech = [(0.99, LOUD)] * 10
    soft_ending = [(0.9, (-45.0, -45.0, -45.0, -45.0)), (0.6, (-50.0, -55.0, -95.0, -95.0))]
    events = _levels_run(detector, speech + soft_ending + [(0.01, QUIET)] * 20)
    stopped = next(e for e in events if isinstance(e, SpeechStopped))
    assert stopped.end_sample == 11 * 512 + 2 * 128


# -- the silence window ending inside the chunk still being received ---------------------


def _seven_silent_chunks_after_speech() -> TurnDetector:
    """A 240 ms window; 224 ms of silence scored so far: it completes inside the next chunk."""
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=240, min_speech_ms=32))
    _levels_run(detector, [(0.99, LOUD)] * 10 + [(0.01, QUIET)] * 7)
    assert detector.in_speech
    return detector


def test_a_quiet_tail_ends_the_turn_before_the_next_chunk_is_complete() -> None:
    detector = _seven_silent_chunks_after_speech()
    voice_end, scored_until = 10 * 512, 17 * 512
    tail_end = scored_until + 3 * 128  # 24 ms of the next chunk received, all quiet
    events = detector.update_tail(tail_end, [-95.0, -95.0, -95.0])
    assert events == [SpeechStopped(end_sample=voice_end, detected_sample=tail_end)]
    assert not detector.in_speech


def test_a_loud_tail_or_an_unfinished_window_does_not_end_the_turn() -> None:
    detector = _seven_silent_chunks_after_speech()
    scored_until = 17 * 512
    assert detector.update_tail(scored_until + 3 * 128, [-95.0, -95.0, -25.0]) == []
    assert detector.update_tail(scored_until + 128, [-95.0]) == []  # window not complete yet
    assert detector.in_speech


def test_no_tail_decision_before_a_silence_run_has_started() -> None:
    detector = TurnDetector(TurnDetectionParams(silence_duration_ms=240, min_speech_ms=32))
    _levels_run(detector, [(0.99, LOUD)] * 30)
    assert detector.update_tail(30 * 512 + 512, [-95.0] * 4) == []
