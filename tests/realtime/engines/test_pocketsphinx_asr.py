"""PocketsphinxTranscriber: incremental English transcription for the echo engine."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import numpy as np
import pytest

from realtime.engines.pocketsphinx_asr import (
    PocketsphinxTranscriber,
    TranscriberClosedError,
    Utterance,
)
from tests.support.speech import frames_of, low_noise, silence, synthesize

# pocketsphinx normalises features with a running cepstral mean that starts from a generic
# prior and adapts after each utterance; a fresh decoder's first utterance is therefore
# recognised poorly. Each transcriber here first hears this calibration sentence.
CALIBRATION = "Good morning, my name is John and I live in the city."
GREETING = "Hello there, how are you doing today?"
COUNTING = "One two three four five six seven."


@pytest.fixture(scope="module")
def calibration_16k() -> np.ndarray:
    return synthesize(CALIBRATION)


@pytest.fixture(scope="module")
def greeting_16k() -> np.ndarray:
    return np.concatenate([silence(0.3), synthesize(GREETING), silence(0.3)])


@pytest.fixture(scope="module")
def counting_16k() -> np.ndarray:
    return np.concatenate([silence(0.3), synthesize(COUNTING), silence(0.3)])


async def _transcribe(
    transcriber: PocketsphinxTranscriber, pcm: np.ndarray, frame: int | None = None
) -> str:
    utterance = transcriber.open_utterance()
    for piece in frames_of(pcm, frame) if frame else [pcm]:
        await utterance.feed(piece)
    return await utterance.finish()


async def _calibrated(calibration: np.ndarray, **kwargs: int) -> PocketsphinxTranscriber:
    transcriber = PocketsphinxTranscriber(**kwargs)
    await _transcribe(transcriber, calibration)
    return transcriber


@pytest.fixture(scope="module")
async def transcriber(calibration_16k: np.ndarray) -> AsyncIterator[PocketsphinxTranscriber]:
    calibrated = await _calibrated(calibration_16k, max_decoders=1)
    yield calibrated
    await calibrated.aclose()


async def test_transcript_of_synthesized_speech_contains_its_words(
    transcriber: PocketsphinxTranscriber, greeting_16k: np.ndarray, counting_16k: np.ndarray
) -> None:
    greeting = (await _transcribe(transcriber, greeting_16k, frame=320)).split()
    counting = (await _transcribe(transcriber, counting_16k, frame=320)).split()
    assert {"how", "are", "you", "doing"} <= set(greeting)
    assert {"three", "five", "six"} <= set(counting)
    assert "how" not in counting and "three" not in greeting


async def _fresh_transcript(feed_all: Callable[[Utterance], Awaitable[None]]) -> str:
    """Transcript from a new transcriber, so that its cepstral mean starts from the same prior."""
    async with PocketsphinxTranscriber(max_decoders=1) as transcriber:
        utterance = transcriber.open_utterance()
        await feed_all(utterance)
        return await utterance.finish()


async def test_how_the_audio_is_fed_does_not_change_the_transcript(
    greeting_16k: np.ndarray,
) -> None:
    async def one_shot(utterance: Utterance) -> None:
        await utterance.feed(greeting_16k)

    async def in_20ms_frames(utterance: Utterance) -> None:
        for frame in frames_of(greeting_16k, 320):
            await utterance.feed(frame)

    async def as_float(utterance: Utterance) -> None:
        await utterance.feed(greeting_16k.astype(np.float32) / 32767.0)

    async def overlapping_calls(utterance: Utterance) -> None:
        await asyncio.gather(*(utterance.feed(f) for f in frames_of(greeting_16k, 1600)))

    whole = await _fresh_transcript(one_shot)
    assert whole
    assert await _fresh_transcript(in_20ms_frames) == whole
    assert await _fresh_transcript(as_float) == whole
    assert await _fresh_transcript(overlapping_calls) == whole


async def test_silence_and_quiet_noise_give_an_empty_transcript(
    transcriber: PocketsphinxTranscriber,
) -> None:
    assert await _transcribe(transcriber, silence(1.0)) == ""
    assert await _transcribe(transcriber, low_noise(1.0, dbfs=-70.0)) == ""


async def test_finishing_without_audio_gives_an_empty_transcript(
    transcriber: PocketsphinxTranscriber,
) -> None:
    assert await transcriber.open_utterance().finish() == ""


async def test_an_utterance_beyond_the_decoder_limit_waits_for_a_decoder_and_still_transcribes(
    calibration_16k: np.ndarray, greeting_16k: np.ndarray, counting_16k: np.ndarray
) -> None:
    transcriber = await _calibrated(calibration_16k, max_decoders=1)
    try:
        first = transcriber.open_utterance()
        second = transcriber.open_utterance()
        for a, b in zip(frames_of(greeting_16k, 3200), frames_of(counting_16k, 3200), strict=False):
            await first.feed(a)
            await second.feed(b)  # no decoder free: kept until one is
        waiting = asyncio.create_task(second.finish())
        await asyncio.sleep(0.05)
        assert not waiting.done()
        greeting = await first.finish()
        counting = await asyncio.wait_for(waiting, timeout=30)
        assert transcriber.decoders_created == 1
    finally:
        await transcriber.aclose()
    assert {"how", "are", "you"} <= set(greeting.split())
    assert {"three", "five", "six"} <= set(counting.split())


async def test_abort_returns_the_decoder_for_the_next_utterance(
    calibration_16k: np.ndarray, counting_16k: np.ndarray
) -> None:
    transcriber = await _calibrated(calibration_16k, max_decoders=1)
    try:
        aborted = transcriber.open_utterance()
        await aborted.feed(counting_16k[:16000])
        await aborted.abort()
        await aborted.abort()
        text = await asyncio.wait_for(_transcribe(transcriber, counting_16k), timeout=30)
        assert transcriber.decoders_created == 1
    finally:
        await transcriber.aclose()
    assert {"three", "five", "six"} <= set(text.split())
    with pytest.raises(TranscriberClosedError):
        await aborted.finish()


async def test_an_utterance_cannot_be_used_after_finish(
    transcriber: PocketsphinxTranscriber, counting_16k: np.ndarray
) -> None:
    utterance = transcriber.open_utterance()
    await utterance.feed(counting_16k[:3200])
    await utterance.finish()
    with pytest.raises(TranscriberClosedError):
        await utterance.feed(counting_16k[:3200])
    with pytest.raises(TranscriberClosedError):
        await utterance.finish()


async def test_warm_up_loads_one_decoder_that_the_first_utterance_reuses() -> None:
    transcriber = PocketsphinxTranscriber()
    try:
        await transcriber.warm_up()
        assert transcriber.decoders_created == 1
        await _transcribe(transcriber, silence(0.5))
        assert transcriber.decoders_created == 1
    finally:
        await transcriber.aclose()


async def test_closed_transcriber_refuses_new_utterances_and_waiting_finishes(
    calibration_16k: np.ndarray,
) -> None:
    transcriber = PocketsphinxTranscriber(max_decoders=1)
    holder = transcriber.open_utterance()
    await holder.feed(calibration_16k[:3200])
    starved = transcriber.open_utterance()
    await starved.feed(calibration_16k[:3200])
    waiting = asyncio.create_task(starved.finish())
    await asyncio.sleep(0.05)
    await transcriber.aclose()
    with pytest.raises(TranscriberClosedError):
        await waiting
    with pytest.raises(TranscriberClosedError):
        transcriber.open_utterance()
    await transcriber.aclose()  # idempotent
