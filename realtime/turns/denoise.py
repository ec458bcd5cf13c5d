"""Input noise reduction (``audio.input.noise_reduction``): WebRTC's noise suppressor as an
``AudioStage`` before the VAD and the engine.

The suppressor is the one of webrtc-audio-processing, through the ``webrtc-noise-gain``
wheel (native code, no model file, no torch). It costs about 3 ms of CPU per second of
audio, small enough to run inline on each 20 ms frame (``benchmarks/noise_reduction.py``
compares it with RNNoise and DeepFilterNet3 on cost and on the VAD's false speech starts).
"""

from __future__ import annotations

import numpy as np
from webrtc_noise_gain import AudioProcessor

from realtime.protocol.session_config import NoiseReduction
from realtime.turns.stages import AudioStage

NOISE_REDUCTION_STAGE = "noise_reduction"

_BLOCK_SAMPLES = 160  # the suppressor works on 10 ms blocks at 16 kHz
# WebRTC's suppression levels are 1 (low, about 6 dB) to 4 (very high, about 21 dB). A
# far-field microphone hears the room's noise nearly as loud as the voice: suppress harder.
SUPPRESSION_LEVELS = {"near_field": 2, "far_field": 3}


class WebRtcNoiseSuppressor:
    """16 kHz int16 in, the same number of samples out, 10 ms (one block) later."""

    name = NOISE_REDUCTION_STAGE

    def __init__(self, level: int) -> None:
        if not 1 <= level <= 4:
            raise ValueError(f"suppression level must be 1..4, got {level}")
        self.level = level
        self._processor = AudioProcessor(0, level)
        self._pending = np.zeros(0, dtype=np.int16)
        # One block of silence ahead of the output keeps its length equal to the input's.
        self._ready = np.zeros(_BLOCK_SAMPLES, dtype=np.int16)

    def process(self, pcm16k: np.ndarray) -> np.ndarray:
        pending = np.concatenate([self._pending, np.asarray(pcm16k, dtype=np.int16)])
        whole = len(pending) - len(pending) % _BLOCK_SAMPLES
        cleaned = [
            self._processor.Process10ms(pending[start : start + _BLOCK_SAMPLES].tobytes()).audio
            for start in range(0, whole, _BLOCK_SAMPLES)
        ]
        self._pending = pending[whole:]
        ready = np.concatenate([self._ready, np.frombuffer(b"".join(cleaned), dtype=np.int16)])
        out, self._ready = ready[: len(pcm16k)], ready[len(pcm16k) :]
        return out


def noise_reduction_stage(config: NoiseReduction | None) -> AudioStage | None:
    """The stage a session's ``noise_reduction`` asks for (None: off)."""
    if config is None:
        return None
    return WebRtcNoiseSuppressor(SUPPRESSION_LEVELS[config.type])
