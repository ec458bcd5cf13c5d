"""Helpers for the SDK tests: test utterances and a free port."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tests.realtime.client.fake_server import sine


def utterance(voiced_ms: float, silence_ms: float, rate: int = 24_000) -> npt.NDArray[np.int16]:
    """A tone of ``voiced_ms`` followed by ``silence_ms`` of digital silence."""
    silence = np.zeros(round(rate * silence_ms / 1000), np.int16)
    return np.concatenate([sine(220.0, voiced_ms, rate), silence])
