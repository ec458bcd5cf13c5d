"""The simulated TTS: espeak-ng's audio with the first chunk held back, labelled simulated."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

from tts.espeak import EspeakTts
from tts.factory import TtsOptions, build_tts
from tts.simulated import SimulatedFirstChunkTts

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng"
)

REPLY = "Sure, here is the short answer. It takes two sentences to say."
FIRST_CHUNK_MS = 400.0


async def words(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "


async def test_the_first_audio_waits_for_the_simulated_latency_and_the_audio_is_espeaks() -> None:
    tts = SimulatedFirstChunkTts(EspeakTts(), first_chunk_ms=FIRST_CHUNK_MS)
    plain = EspeakTts()
    try:
        started = time.monotonic()
        first_at: float | None = None
        simulated: list[np.ndarray] = []
        async with asyncio.timeout(30):
            async for chunk in tts.speak(words(REPLY)):
                if first_at is None and len(chunk.pcm):
                    first_at = time.monotonic()
                simulated.append(chunk.pcm)
            reference = [chunk.pcm async for chunk in plain.speak(words(REPLY))]
    finally:
        await tts.aclose()
        await plain.aclose()

    assert first_at is not None and first_at - started >= FIRST_CHUNK_MS / 1000.0
    assert np.array_equal(np.concatenate(simulated), np.concatenate(reference))


def test_the_backend_is_labelled_simulated_and_built_by_the_factory() -> None:
    tts = build_tts(TtsOptions(name="simulated", first_chunk_ms=150.0))
    assert isinstance(tts, SimulatedFirstChunkTts)
    assert "simulated" in tts.name and "150" in tts.name
    assert tts.sample_rate == EspeakTts.sample_rate
