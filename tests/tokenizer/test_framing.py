"""Fixed-size framing of a sample stream."""

from __future__ import annotations

import numpy as np
import pytest

from tokenizer.framing import FrameSplitter, frame_samples_for


def test_frame_size_for_20ms_frames() -> None:
    assert frame_samples_for(20, 16000) == 320
    assert frame_samples_for(20, 24000) == 480
    assert frame_samples_for(32, 16000) == 512
    with pytest.raises(ValueError, match="holds no samples"):
        frame_samples_for(0.01, 16000)


def test_pieces_of_any_size_come_out_as_exact_frames_in_order() -> None:
    splitter = FrameSplitter(320)
    signal = np.arange(10_000, dtype=np.int32).astype(np.int16)
    rng = np.random.default_rng(7)
    frames: list[np.ndarray] = []
    position = 0
    while position < signal.size:
        size = int(rng.integers(0, 900))
        frames += splitter.push(signal[position : position + size])
        position += size
    assert all(frame.shape == (320,) and frame.dtype == np.int16 for frame in frames)
    assert len(frames) == 10_000 // 320
    assert splitter.pending_samples == 10_000 % 320
    tail = splitter.flush(pad=False)
    assert tail is not None
    np.testing.assert_array_equal(np.concatenate([*frames, tail]), signal)


def test_small_pushes_wait_until_a_frame_is_complete() -> None:
    splitter = FrameSplitter(4)
    assert splitter.push(np.array([1, 2, 3], dtype=np.int16)) == []
    assert splitter.pending_samples == 3
    frames = splitter.push(np.array([4, 5], dtype=np.int16))
    assert [frame.tolist() for frame in frames] == [[1, 2, 3, 4]]
    assert splitter.pending_samples == 1


def test_flush_zero_pads_the_last_partial_frame() -> None:
    splitter = FrameSplitter(4)
    splitter.push(np.array([1.5, 2.5], dtype=np.float32))
    frame = splitter.flush()
    assert frame is not None
    assert frame.dtype == np.float32
    assert frame.tolist() == [1.5, 2.5, 0.0, 0.0]
    assert splitter.pending_samples == 0
    assert splitter.flush() is None


def test_flush_without_pending_samples_gives_none() -> None:
    splitter = FrameSplitter(4)
    splitter.push(np.arange(8, dtype=np.int16))
    assert splitter.flush() is None


def test_frames_do_not_alias_the_callers_buffer() -> None:
    splitter = FrameSplitter(4)
    buffer = np.arange(8, dtype=np.int16)
    frames = splitter.push(buffer)
    buffer[:] = 0
    assert frames[0].tolist() == [0, 1, 2, 3]


def test_reset_drops_pending_samples() -> None:
    splitter = FrameSplitter(4)
    splitter.push(np.arange(3, dtype=np.int16))
    splitter.reset()
    assert splitter.pending_samples == 0
    assert splitter.push(np.arange(4, dtype=np.int16))[0].tolist() == [0, 1, 2, 3]


def test_mixing_dtypes_is_refused() -> None:
    splitter = FrameSplitter(4)
    splitter.push(np.arange(3, dtype=np.int16))
    with pytest.raises(TypeError, match="int16"):
        splitter.push(np.zeros(3, dtype=np.float32))


def test_frame_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        FrameSplitter(0)
