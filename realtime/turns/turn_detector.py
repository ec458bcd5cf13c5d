"""The server_vad turn state machine: speech start/stop events from VAD probabilities (no I/O)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from realtime.protocol.session_config import (
    DEFAULT_PREFIX_PADDING_MS,
    DEFAULT_SILENCE_DURATION_MS,
    DEFAULT_VAD_THRESHOLD,
)
from realtime.turns.silero import SILERO_CHUNK_SAMPLES
from realtime.turns.vad import VadChunkResult

HYSTERESIS = 0.15
"""Silence during speech is ``probability < threshold - 0.15`` (silero's neg_threshold)."""
MIN_NEGATIVE_THRESHOLD = 0.01
VOICED_RANGE_DB = 40.0
"""Audio within this many dB of the turn's loudest 2 ms counts as voiced when the end of
speech is refined from the audio's levels (the same gate the SDK uses for "last voiced")."""
SILENT_FLOOR_DB = -70.0
MAX_END_REFINEMENT_MS = 96
"""How far before silero's own speech end the refined end may lie: silero's probability
trails the audio by about two 32 ms chunks."""


@dataclass(frozen=True)
class TurnDetectionParams:
    """Endpointing parameters; the first three have OpenAI Realtime's names and defaults.

    ``prefix_padding_ms`` is not used by the detector: the session applies it to its audio
    buffer when speech starts.
    """

    threshold: float = DEFAULT_VAD_THRESHOLD
    prefix_padding_ms: int = DEFAULT_PREFIX_PADDING_MS
    silence_duration_ms: int = DEFAULT_SILENCE_DURATION_MS
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

    When the results carry ``levels_db``, the silence window is counted from where the voice
    ended in the audio (the last 2 ms part within ``VOICED_RANGE_DB`` of the turn's peak, at most
    ``MAX_END_REFINEMENT_MS`` before the silence run), not from where silero's probability
    fell, which lags the audio by about two chunks; the run must still be unbroken.

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
        self._voice_end: int | None = None  # in speech: refined end of voice before the run
        self._peak_db = SILENT_FLOOR_DB
        self._recent: deque[VadChunkResult] = deque(maxlen=1 + MAX_END_REFINEMENT_MS // 32)

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    @property
    def pause_start(self) -> int | None:
        """In speech and silent now: where the voice ended (refined), else None."""
        if not self._in_speech or self._silence_start is None:
            return None
        return self._voice_end if self._voice_end is not None else self._silence_start

    def reset(self) -> None:
        """Back to idle, forgetting any voiced or silence run; emits nothing."""
        self._in_speech = False
        self._voiced_start = None
        self._silence_start = None
        self._voice_end = None
        self._last_voiced_end = 0
        self._peak_db = SILENT_FLOOR_DB
        self._recent.clear()

    def _samples(self, milliseconds: int) -> int:
        return milliseconds * self.sample_rate // 1000

    def update(self, result: VadChunkResult) -> list[SpeechStarted | SpeechStopped]:
        chunk_start = result.end_sample - self.chunk_samples
        if not self._in_speech:
            events = self._update_idle(result, chunk_start)
        else:
            events = self._update_in_speech(result, chunk_start)
        if result.probability >= self.params.threshold and result.levels_db:
            self._peak_db = max(self._peak_db, *result.levels_db)
        self._recent.append(result)
        return events

    def _refined_voice_end(self, silence_start: int) -> int:
        """Where the voice ended before a silence run starting at ``silence_start``."""
        floor = max(self._peak_db - VOICED_RANGE_DB, SILENT_FLOOR_DB)
        earliest = silence_start - self._samples(MAX_END_REFINEMENT_MS)
        for chunk in reversed(self._recent):
            if not chunk.levels_db:
                return silence_start
            part = self.chunk_samples // len(chunk.levels_db)
            for index in range(len(chunk.levels_db) - 1, -1, -1):
                part_end = chunk.end_sample - (len(chunk.levels_db) - 1 - index) * part
                if part_end <= earliest:
                    return earliest
                if part_end <= silence_start and chunk.levels_db[index] >= floor:
                    return part_end
        return silence_start

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
            self._voice_end = None
            self._last_voiced_end = result.end_sample
            return []
        if self._silence_start is None:
            if result.probability >= self.params.negative_threshold:
                self._last_voiced_end = result.end_sample  # hysteresis band: still speech
                return []
            self._silence_start = chunk_start
            self._voice_end = self._refined_voice_end(chunk_start)
        voice_end = self._voice_end if self._voice_end is not None else self._silence_start
        if result.end_sample - voice_end < self._samples(self.params.silence_duration_ms):
            return []
        return [self._stop(voice_end, result.end_sample)]

    def _stop(self, voice_end: int, detected: int) -> SpeechStopped:
        self._in_speech = False
        self._silence_start = None
        self._voice_end = None
        self._peak_db = SILENT_FLOOR_DB
        return SpeechStopped(end_sample=voice_end, detected_sample=detected)

    def update_tail(self, end_sample: int, levels_db: Sequence[float]) -> list[TurnEvent]:
        """Audio received after the last whole VAD chunk: ``levels_db`` of its parts, oldest
        first, the last one ending at ``end_sample``.

        A 32 ms chunk is only scored once all of it has arrived. During a silence run, the
        window may complete inside the chunk still being received: if everything received
        since the last scored chunk is quiet (below the voiced range), speech stops at
        ``end_sample`` instead of at the chunk's end.
        """
        if not self._in_speech or self._silence_start is None or self._voice_end is None:
            return []
        if end_sample - self._voice_end < self._samples(self.params.silence_duration_ms):
            return []
        floor = max(self._peak_db - VOICED_RANGE_DB, SILENT_FLOOR_DB)
        if any(level >= floor for level in levels_db):
            return []
        return [self._stop(self._voice_end, end_sample)]
