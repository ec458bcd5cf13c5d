"""The input buffer addresses audio by absolute sample index while trimming old audio."""

import numpy as np
import pytest

from realtime.session.input_buffer import InputAudioBuffer, InputBufferFull


def ramp(start: int, n: int) -> np.ndarray:
    return np.arange(start, start + n, dtype=np.int16)


def test_slices_use_absolute_indices_after_trimming() -> None:
    buffer = InputAudioBuffer(capacity_samples=1000)
    buffer.append(ramp(0, 100))
    buffer.append(ramp(100, 100))
    buffer.drop_before(150)
    assert (buffer.start, buffer.end, len(buffer)) == (150, 200, 50)
    assert buffer.slice(140, 160).tolist() == list(range(150, 160))
    buffer.append(ramp(200, 10))
    assert buffer.slice(195, 205).tolist() == list(range(195, 205))


def test_clear_keeps_the_position() -> None:
    buffer = InputAudioBuffer(capacity_samples=1000)
    buffer.append(ramp(0, 64))
    buffer.clear()
    assert (buffer.start, buffer.end, len(buffer)) == (64, 64, 0)


def test_full_buffer_rejects_the_append_and_keeps_what_it_had() -> None:
    buffer = InputAudioBuffer(capacity_samples=100)
    buffer.append(ramp(0, 90))
    with pytest.raises(InputBufferFull):
        buffer.append(ramp(90, 20))
    assert len(buffer) == 90
