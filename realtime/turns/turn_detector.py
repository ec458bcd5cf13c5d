"""The server_vad turn state machine: speech start/stop events from VAD probabilities (no I/O)."""

from __future__ import annotations

from dataclasses import dataclass

from realtime.turns.silero import SILERO_CHUNK_SAMPLES
from realtime.turns.vad import VadChunkResult

HYSTERESIS = 0.15
"""Silence during speech is ``probability < threshold - 0.15`` (silero's neg_threshold)."""
MIN_NEGATIVE_THRESHOLD = 0.01


@dataclass(frozen=True)
class TurnDetectionParams:
    """Endpointing parameters; the first three have OpenAI Realtime's names and defaults.

    ``prefix_padding_ms`` is not used by the detector: the session applies it to its audio
    buffer when speech starts.
    """

    threshold: float = 0.5
    prefix_padding_ms: int = 300
    silence_duration_ms: int = 500
    min_speech_ms: int = 64

    def __post_init__(self) -> None:
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"threshold must be in (0, 1], got {self.threshold}")
        for name in ("prefix_padding_ms", "silence_duration_ms", "min_speech_ms"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")

    @property
    def negative_threshold(self) -> float:
        """Below this, a chunk during speech counts as silence."""
        return max(self.threshold - HYSTERESIS, MIN_NEGATIVE_THRESHOLD)


@dataclass(frozen=True)
class SpeechStarted:
    """Speech began at ``start_sample``: the start of the first voiced chunk (no padding)."""

    start_sample: int


@dataclass(frozen=True)
class SpeechStopped:
    """Speech ended at ``end_sample`` (end of the last voiced chunk); the silence window that
    confirmed it completed at ``detected_sample``."""

    end_sample: int
    detected_sample: int


TurnEvent = SpeechStarted | SpeechStopped


class TurnDetector:
    """Turns a stream of ``VadChunkResult`` (fed in order, contiguous) into speech events.

    Idle: speech starts once chunks with ``probability >= threshold`` have run for at least
    ``min_speech_ms`` without a break; ``SpeechStarted`` carries the start of the first of them.
    In speech: a chunk with ``probability < negative_threshold`` starts a silence run; only a
    chunk at or above ``threshold`` ends it (chunks in between neither start nor end a run,
    like silero's own get_speech_timestamps). Speech stops when a silence run reaches
    ``silence_duration_ms``.

    Setting ``params`` takes effect at the next ``update``. Mid-speech, a silence run already
    under way is measured against the new ``silence_duration_ms`` (shortening it can stop
    speech at the next chunk), and an unfinished start against the new ``min_speech_ms``.
    """

    def __init__(
        self,
        params: TurnDetectionParams,
        sample_rate: int = 16_000,
        chunk_samples: int = SILERO_CHUNK_SAMPLES,
    ) -> None:
        self.params = params
        self.sample_rate = sample_rate
        self.chunk_samples = chunk_samples
        self._in_speech = False
        self._voiced_start: int | None = None  # idle: start of the current voiced run
        self._last_voiced_end = 0  # in speech: end of the last chunk before the silence run
        self._silence_start: int | None = None  # in speech: start of the current silence run

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def reset(self) -> None:
        """Back to idle, forgetting any voiced or silence run; emits nothing."""
        self._in_speech = False
        self._voiced_start = None
        self._silence_start = None
        self._last_voiced_end = 0

    def _samples(self, milliseconds: int) -> int:
        return milliseconds * self.sample_rate // 1000

    def update(self, result: VadChunkResult) -> list[SpeechStarted | SpeechStopped]:
        chunk_start = result.end_sample - self.chunk_samples
        if not self._in_speech:
            return self._update_idle(result, chunk_start)
        return self._update_in_speech(result, chunk_start)

    def _update_idle(self, result: VadChunkResult, chunk_start: int) -> list[TurnEvent]:
        if result.probability < self.params.threshold:
            self._voiced_start = None
            return []
        if self._voiced_start is None:
            self._voiced_start = chunk_start
        if result.end_sample - self._voiced_start < self._samples(self.params.min_speech_ms):
            return []
        start = self._voiced_start
        self._in_speech = True
        self._voiced_start = None
        self._silence_start = None
        self._last_voiced_end = result.end_sample
        return [SpeechStarted(start_sample=start)]

    def _update_in_speech(self, result: VadChunkResult, chunk_start: int) -> list[TurnEvent]:
        if result.probability >= self.params.threshold:
            self._silence_start = None
            self._last_voiced_end = result.end_sample
            return []
        if self._silence_start is None:
            if result.probability >= self.params.negative_threshold:
                self._last_voiced_end = result.end_sample  # hysteresis band: still speech
                return []
            self._silence_start = chunk_start
        if result.end_sample - self._silence_start < self._samples(self.params.silence_duration_ms):
            return []
        stopped = SpeechStopped(end_sample=self._last_voiced_end, detected_sample=result.end_sample)
        self._in_speech = False
        self._silence_start = None
        return [stopped]
