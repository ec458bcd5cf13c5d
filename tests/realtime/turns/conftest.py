"""Fixtures for the VAD and turn tests: the real silero model, a running batcher, speech."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest

from benchmarks.harness.speech import synthesize
from realtime.turns.silero import SileroVadModel
from realtime.turns.vad import VadBatcher

SENTENCE = "Hello there, how are you doing today?"


@pytest.fixture(scope="session")
def silero_model() -> SileroVadModel:
    return SileroVadModel()


@pytest.fixture
async def batcher(silero_model: SileroVadModel) -> AsyncIterator[VadBatcher]:
    vad = VadBatcher(silero_model)
    await vad.start()
    yield vad
    await vad.aclose()


@pytest.fixture(scope="session")
def sentence_16k() -> np.ndarray:
    """espeak-ng speaking SENTENCE (about 2.2 s, 16 kHz int16)."""
    return synthesize(SENTENCE)
