"""The input buffer addresses audio by absolute sample index while trimming old audio."""

import numpy as np
import pytest

from realtime.turns.audio_buffer import InputAudioBuffer, InputBufferFull


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


def test_many_small_appends_and_trims_keep_every_sample_in_place() -> None:
    buffer = InputAudioBuffer(capacity_samples=50_000)
    for step in range(2_000):
        buffer.append(ramp(buffer.end % 7_000, 7))  # sample i holds (i - i % 7) % 7000 + i % 7
        if step % 13 == 0:
            buffer.drop_before(buffer.end - 500)
    assert len(buffer) == buffer.end - buffer.start <= 500 + 13 * 7
    expected = [(i - i % 7) % 7_000 + i % 7 for i in range(buffer.start, buffer.end)]
    assert buffer.slice(buffer.start, buffer.end).tolist() == expected


def test_a_slice_is_a_copy_that_later_appends_do_not_change() -> None:
    buffer = InputAudioBuffer(capacity_samples=100_000)
    buffer.append(ramp(0, 100))
    kept = buffer.slice(0, 100)
    for start in range(100, 60_000, 1000):
        buffer.append(ramp(start % 30_000, 1000))
    buffer.drop_before(59_000)
    assert kept.tolist() == list(range(100))
