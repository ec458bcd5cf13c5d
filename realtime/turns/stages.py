"""The audio stages a session's input passes through before the VAD, as small typed objects.

The chain is: ``ResampleStage`` (the client's rate to 16 kHz, always first) → any number of
``AudioStage`` objects working at 16 kHz on the same sample timeline (echo cancellation,
then noise suppression: ``STAGE_ORDER``) → the input buffer and the VAD.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.resample import StreamResampler

# The 16 kHz stages in the order a frame passes them, by name (others after these): echo
# cancellation first, as in WebRTC's own chain, so that it sees the echo as the room made it
# (a suppressor before it would change the echo in ways its linear model cannot follow).
STAGE_ORDER = ("echo_cancellation", "noise_reduction")


def stage_rank(name: str) -> int:
    return STAGE_ORDER.index(name) if name in STAGE_ORDER else len(STAGE_ORDER)


class AudioStage(Protocol):
    """A 16 kHz int16 → 16 kHz int16 step that keeps the sample count (a denoiser, an echo
    canceller). It may hold state across calls."""

    name: str

    def process(self, pcm16k: np.ndarray) -> np.ndarray: ...


class ResampleStage:
    """Any client rate to 16 kHz, streaming; rebuilt when the client's rate changes."""

    name = "resample"

    def __init__(self) -> None:
        self._resampler: StreamResampler | None = None

    @property
    def in_rate(self) -> int | None:
        return self._resampler.in_rate if self._resampler is not None else None

    def process(self, pcm: np.ndarray, sample_rate: int) -> np.ndarray:
        if self._resampler is None or self._resampler.in_rate != sample_rate:
            # soxr's LQ holds back about 11 ms (a sawtooth up to 20 ms) where MQ and HQ hold
            # about 21 ms, and still passes everything up to 7.3 kHz: ample for speech going
            # to VAD, ASR and engine.
            self._resampler = StreamResampler(sample_rate, ENGINE_SAMPLE_RATE, quality="LQ")
        return self._resampler.process(pcm)

    def held_input(self) -> np.ndarray:
        """Input received whose 16 kHz output the filter still holds back (at ``in_rate``)."""
        return self._resampler.held_input() if self._resampler is not None else np.zeros(0)
