"""The session's input audio buffer: 16 kHz int16 samples addressed by absolute sample index."""

from __future__ import annotations

import numpy as np


class InputBufferFull(Exception):
    """Appending would exceed the buffer's capacity."""


class InputAudioBuffer:
    """Audio received since the last commit or clear.

    Indices are absolute: sample ``i`` is the i-th sample received by the session since it
    started, so the VAD's positions stay valid while old audio is trimmed away.

    Appends, slices and trims cost time in proportion to the samples they move, never to
    the length held: the samples live in one array that grows by doubling, ``drop_before``
    only moves a start offset, and the live part is moved to the front when the dead part
    outgrows it.
    """

    def __init__(self, capacity_samples: int) -> None:
        self.capacity_samples = capacity_samples
        self._data = np.zeros(4096, dtype=np.int16)
        self._head = 0  # index in _data of absolute sample self._start
        self._start = 0
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
        count = len(pcm)
        if self._length + count > self.capacity_samples:
            raise InputBufferFull
        if not count:
            return
        tail = self._head + self._length
        if tail + count > len(self._data):
            self._make_room(count)
            tail = self._head + self._length
        self._data[tail : tail + count] = pcm
        self._length += count

    def slice(self, start: int, end: int) -> np.ndarray:
        """Samples ``[start, end)``, clipped to what is held (a copy)."""
        start = max(start, self._start)
        end = min(end, self.end)
        if end <= start:
            return np.zeros(0, dtype=np.int16)
        offset = self._head - self._start
        return self._data[start + offset : end + offset].copy()

    def drop_before(self, index: int) -> None:
        """Forget samples before absolute ``index``."""
        index = min(max(index, self._start), self.end)
        dropped = index - self._start
        self._head += dropped
        self._length -= dropped
        self._start = index
        if self._length == 0:
            self._head = 0

    def clear(self) -> None:
        self.drop_before(self.end)

    def _make_room(self, count: int) -> None:
        needed = self._length + count
        if needed <= len(self._data) // 2:
            # Plenty of dead space in front: move the live part down (amortised by the
            # appends that filled the array since the last move).
            self._data[: self._length] = self._data[self._head : self._head + self._length]
        else:
            size = len(self._data)
            while size < needed * 2:
                size *= 2
            grown = np.zeros(size, dtype=np.int16)
            grown[: self._length] = self._data[self._head : self._head + self._length]
            self._data = grown
        self._head = 0
