"""Fixed-size framing of a sample stream: `FrameSplitter` turns any pieces into equal frames."""

from __future__ import annotations

import numpy as np

from tokenizer.pcm import samples_for_ms


def frame_samples_for(ms: float, sample_rate: int) -> int:
    """Samples in one frame of `ms` milliseconds at `sample_rate` (e.g. 20 ms at 16 kHz -> 320)."""
    samples = samples_for_ms(ms, sample_rate)
    if samples < 1:
        raise ValueError(f"a {ms} ms frame at {sample_rate} Hz holds no samples")
    return samples


class FrameSplitter:
    """Streaming cutter of mono samples into frames of exactly `frame_samples`, keeping the dtype.

    Frames returned by `push` are fresh arrays (never views of the caller's input), so the
    caller may reuse its buffers.
    """

    def __init__(self, frame_samples: int) -> None:
        if frame_samples < 1:
            raise ValueError(f"frame_samples must be at least 1, got {frame_samples}")
        self._frame_samples = frame_samples
        self._pending: np.ndarray | None = None

    @property
    def frame_samples(self) -> int:
        return self._frame_samples

    @property
    def pending_samples(self) -> int:
        """Samples received but not yet returned in a frame."""
        return 0 if self._pending is None else int(self._pending.size)

    def push(self, pcm: np.ndarray) -> list[np.ndarray]:
        """Add samples; returns every frame completed by them (possibly none)."""
        samples = np.asarray(pcm)
        if samples.ndim != 1:
            raise ValueError(f"FrameSplitter needs mono (1-D) samples, got shape {samples.shape}")
        pending = self._pending
        if pending is not None and pending.dtype != samples.dtype:
            raise TypeError(f"expected {pending.dtype} samples like before, got {samples.dtype}")
        # One copy: concatenation (or an explicit copy) gives an array the frames may view.
        joined = samples.copy() if pending is None else np.concatenate((pending, samples))
        n_frames = joined.size // self._frame_samples
        if n_frames == 0:
            self._pending = joined
            return []
        used = n_frames * self._frame_samples
        leftover = joined[used:]
        self._pending = leftover.copy() if leftover.size else None
        return list(joined[:used].reshape(n_frames, self._frame_samples))

    def flush(self, pad: bool = True) -> np.ndarray | None:
        """Return the pending partial frame (zero-padded to a full frame if `pad`), or None."""
        pending = self._pending
        self._pending = None
        if pending is None or pending.size == 0:
            return None
        if not pad:
            return pending
        frame = np.zeros(self._frame_samples, dtype=pending.dtype)
        frame[: pending.size] = pending
        return frame

    def reset(self) -> None:
        """Forget any pending samples."""
        self._pending = None
