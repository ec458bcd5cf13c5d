"""The session's input audio buffer: 16 kHz int16 samples addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class InputBufferFull(Exception):
    """Appending would exceed the buffer's capacity."""


class InputAudioBuffer:
    """Audio received since the last commit or clear.

    Indices are absolute: sample ``i`` is the i-th sample received by the session since it
    started, so the VAD's positions stay valid while old audio is trimmed away.
    """

    def __init__(self, capacity_samples: int) -> None:
        self.capacity_samples = capacity_samples
        self._start = 0
        self._parts: list[np.ndarray] = []
        self._length = 0

    @property
    def start(self) -> int:
        """Absolute index of the oldest sample still held."""
        return self._start

    @property
    def end(self) -> int:
        """Absolute index just after the newest sample."""
        return self._start + self._length

    def __len__(self) -> int:
        return self._length

    def append(self, pcm: np.ndarray) -> None:
        if self._length + len(pcm) > self.capacity_samples:
            raise InputBufferFull
        if len(pcm):
            self._parts.append(pcm)
            self._length += len(pcm)

    def slice(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)``, clipped to what is held."""
        start = max(start, self._start)
        end = min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        data = self._consolidate()
        return data[start - self._start : end - self._start].copy()

    def drop_before(self, index: int) -> None:
        """Forget samples before absolute ``index``."""
        index = min(max(index, self._start), self.end)
        if index == self._start:
            return
        data = self._consolidate()
        kept = data[index - self._start :]
        self._parts = [kept] if len(kept) else []
        self._length = len(kept)
        self._start = index

    def clear(self) -> None:
        self.drop_before(self.end)

    def _consolidate(self) -> np.ndarray:
        if len(self._parts) != 1:
            self._parts = [
                np.concatenate(self._parts) if self._parts else np.zeros(0, dtype=np.int16)
            ]
        return self._parts[0]
