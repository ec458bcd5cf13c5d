"""PocketsphinxTranscriber: English transcription for the echo engine, in a worker process."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.speech import low_noise, silence, synthesize
from realtime.engines.pocketsphinx_asr import (
    PocketsphinxTranscriber,
    TranscriberClosedError,
)

GREETING = "Hello there, how are you doing today?"
COUNTING = "One two three four five six seven."


@pytest.fixture(scope="module")
async def transcriber() -> AsyncIterator[PocketsphinxTranscriber]:
    shared = PocketsphinxTranscriber()
    await shared.warm_up()
    yield shared
    await shared.aclose()


async def _transcribe(transcriber: PocketsphinxTranscriber, *pieces: np.ndarray) -> str:
    utterance = transcriber.open_utterance()
    for piece in pieces:
        await utterance.feed(piece)
    return await utterance.finish()


async def test_transcript_of_synthesized_speech_contains_its_words(
    transcriber: PocketsphinxTranscriber,
) -> None:
    greeting = await _transcribe(transcriber, synthesize(GREETING))
    counting = await _transcribe(transcriber, synthesize(COUNTING))
    assert {"how", "are", "you", "doing"} <= set(greeting.split())
    assert {"three", "four", "five", "six"} <= set(counting.split())


async def test_pieces_cut_at_pauses_give_the_transcripts_in_order(
    transcriber: PocketsphinxTranscriber,
) -> None:
    pause = silence(0.3)
    pieces = (
        np.concatenate([synthesize(COUNTING), pause]),
        np.concatenate([pause, synthesize(GREETING)]),
    )
    utterance = transcriber.open_utterance()
    for piece in pieces:
        await utterance.feed(piece)
    assert utterance.pieces_submitted == 2, "each piece is decoded as soon as it arrives"
    words = (await utterance.finish()).split()
    assert "three" in words and "doing" in words
    assert words.index("three") < words.index("doing")


async def test_short_feeds_are_pooled_until_a_pause(transcriber: PocketsphinxTranscriber) -> None:
    speech = np.concatenate([synthesize(GREETING), silence(0.2)])
    utterance = transcriber.open_utterance()
    for start in range(0, len(speech), 320):  # 20 ms feeds, as a transport would make them
        await utterance.feed(speech[start : start + 320])
    text = await utterance.finish()
    assert utterance.pieces_submitted <= 3, "pieces are cut at pauses, not every half second"
    assert {"how", "are", "you"} <= set(text.split())


async def test_silence_and_quiet_noise_give_an_empty_transcript(
    transcriber: PocketsphinxTranscriber,
) -> None:
    assert await _transcribe(transcriber, silence(1.0)) == ""
    assert await _transcribe(transcriber, low_noise(1.0)) == ""
    assert await _transcribe(transcriber) == ""


async def test_decoding_runs_in_another_process_and_the_event_loop_keeps_running(
    transcriber: PocketsphinxTranscriber,
) -> None:
    assert await transcriber.warm_up() != os.getpid()
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.005)
            ticks += 1

    ticker = asyncio.create_task(tick())
    await _transcribe(transcriber, synthesize(GREETING), synthesize(COUNTING))
    ticker.cancel()
    # A decode holding this process's GIL would have frozen the ticker for its duration
    # (~0.5 s of decoding here); in a worker process the loop keeps ticking.
    assert ticks >= 10


async def test_an_utterance_cannot_be_used_after_finish_or_abort(
    transcriber: PocketsphinxTranscriber,
) -> None:
    finished = transcriber.open_utterance()
    await finished.finish()
    with pytest.raises(TranscriberClosedError):
        await finished.feed(silence(0.1))
    aborted = transcriber.open_utterance()
    await aborted.feed(synthesize(COUNTING))
    await aborted.abort()
    with pytest.raises(TranscriberClosedError):
        await aborted.finish()
    assert "three" in (await _transcribe(transcriber, synthesize(COUNTING))).split()


async def test_closed_transcriber_refuses_new_utterances() -> None:
    transcriber = PocketsphinxTranscriber()
    await transcriber.aclose()
    with pytest.raises(TranscriberClosedError):
        transcriber.open_utterance()
