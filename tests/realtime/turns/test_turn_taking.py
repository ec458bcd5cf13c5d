"""End to end: espeak-ng speech through VadStream (real silero model) and TurnDetector."""

from __future__ import annotations

import numpy as np

from benchmarks.harness.speech import energy_spans, frames_of, low_noise, silence, synthesize
from realtime.turns.turn_detector import (
    SpeechStarted,
    SpeechStopped,
    TurnDetectionParams,
    TurnDetector,
)
from realtime.turns.vad import VadBatcher

FRAME_20MS = 320
TOLERANCE = 1600  # 100 ms at 16 kHz


async def _detect(
    batcher: VadBatcher, audio: np.ndarray, params: TurnDetectionParams
) -> list[SpeechStarted | SpeechStopped]:
    stream = batcher.open_stream()
    detector = TurnDetector(params)
    events: list[SpeechStarted | SpeechStopped] = []
    for frame in frames_of(audio, FRAME_20MS):
        for result in await stream.process(frame):
            events.extend(detector.update(result))
    stream.close()
    return events


async def test_one_sentence_then_silence_gives_one_start_and_one_stop_at_the_speech_edges(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    audio = np.concatenate([silence(0.5), sentence_16k, silence(1.0)])
    (speech,) = energy_spans(audio)
    params = TurnDetectionParams()

    events = await _detect(batcher, audio, params)

    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]
    started, stopped = events
    assert isinstance(started, SpeechStarted) and isinstance(stopped, SpeechStopped)
    assert abs(started.start_sample - speech.start_sample) <= TOLERANCE
    assert abs(stopped.end_sample - speech.end_sample) <= TOLERANCE
    silence_samples = params.silence_duration_ms * 16
    assert silence_samples <= stopped.detected_sample - stopped.end_sample < silence_samples + 512


async def test_two_sentences_a_second_apart_are_two_turns(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    second = synthesize("The weather is lovely this morning.")
    audio = np.concatenate([silence(0.3), sentence_16k, silence(1.0), second, silence(1.0)])
    spans = energy_spans(audio)
    assert len(spans) == 2

    events = await _detect(batcher, audio, TurnDetectionParams())

    starts = [e.start_sample for e in events if isinstance(e, SpeechStarted)]
    stops = [e.end_sample for e in events if isinstance(e, SpeechStopped)]
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped] * 2
    for span, start, stop in zip(spans, starts, stops, strict=True):
        assert abs(start - span.start_sample) <= TOLERANCE
        assert abs(stop - span.end_sample) <= TOLERANCE


async def test_a_pause_shorter_than_silence_duration_stays_one_turn(
    batcher: VadBatcher, sentence_16k: np.ndarray
) -> None:
    audio = np.concatenate([silence(0.3), sentence_16k, silence(0.3), sentence_16k, silence(1.0)])
    events = await _detect(batcher, audio, TurnDetectionParams(silence_duration_ms=700))
    assert [type(e) for e in events] == [SpeechStarted, SpeechStopped]


async def test_quiet_background_noise_never_starts_a_turn(batcher: VadBatcher) -> None:
    audio = np.concatenate([low_noise(2.0, dbfs=-60.0, seed=3), low_noise(2.0, dbfs=-50.0, seed=4)])
    assert await _detect(batcher, audio, TurnDetectionParams()) == []
