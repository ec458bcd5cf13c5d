"""Sample-rate conversion with libsoxr: one-shot `resample` and the streaming `StreamResampler`."""

from __future__ import annotations

from typing import Literal

import numpy as np
import numpy.typing as npt
import soxr

SoxrQuality = Literal["QQ", "LQ", "MQ", "HQ", "VHQ"]
DEFAULT_QUALITY: SoxrQuality = "HQ"
_SUPPORTED_DTYPES = (np.dtype(np.int16), np.dtype(np.float32))


def _check_rates(in_rate: int, out_rate: int) -> None:
    if in_rate <= 0 or out_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {in_rate} -> {out_rate}")


def _check_samples(pcm: np.ndarray, dtype: np.dtype | None = None) -> None:
    if pcm.ndim != 1:
        raise ValueError(f"resampling needs mono (1-D) samples, got shape {pcm.shape}")
    if dtype is None and pcm.dtype not in _SUPPORTED_DTYPES:
        raise TypeError(f"resampling needs int16 or float32 samples, got dtype {pcm.dtype}")
    if dtype is not None and pcm.dtype != dtype:
        raise TypeError(f"this resampler takes {dtype} samples, got dtype {pcm.dtype}")


def resample(
    pcm: npt.NDArray[np.int16] | npt.NDArray[np.float32],
    in_rate: int,
    out_rate: int,
    quality: SoxrQuality = DEFAULT_QUALITY,
) -> np.ndarray:
    """Resample a whole mono signal; int16 in gives int16 out, float32 in gives float32 out.

    The output has about round(len * out_rate / in_rate) samples. Equal rates return `pcm` itself.
    """
    _check_rates(in_rate, out_rate)
    samples = np.asarray(pcm)
    _check_samples(samples)
    if in_rate == out_rate:
        return samples
    result: np.ndarray = soxr.resample(np.ascontiguousarray(samples), in_rate, out_rate, quality)
    return result


def _to_float(samples: np.ndarray) -> npt.NDArray[np.float32]:
    return samples.astype(np.float32) / np.float32(32768.0)


def _to_int16(samples: np.ndarray) -> npt.NDArray[np.int16]:
    return np.clip(np.rint(samples * np.float32(32768.0)), -32768, 32767).astype(np.int16)


class StreamResampler:
    """Streaming resampler for one continuous mono signal; state lives in a soxr.ResampleStream.

    The stream always runs in float32, int16 being converted on the way in and out: soxr's
    streaming int16 output is not a function of its input (the same audio gave outputs that
    differ by a sample value or two from run to run and process to process), and the engine's
    prefix cache needs the same audio to give the same samples every time.

    `process` may return fewer samples than the rate ratio suggests while the filter fills;
    `flush` drains the tail, after which the totals match round(total_in * out / in) to within a
    sample or two, and the object is ready for a new signal. Equal rates pass samples through
    without copying. `held_input` gives the latest input whose output the filter still holds
    back, for callers that must judge the newest audio before it comes out.
    """

    HELD_INPUT_LIMIT_S = 0.1
    """The most recent input kept for `held_input` (soxr's LQ holds up to 20 ms, HQ up to 40)."""

    def __init__(
        self,
        in_rate: int,
        out_rate: int,
        dtype: npt.DTypeLike = np.int16,
        quality: SoxrQuality = DEFAULT_QUALITY,
    ) -> None:
        _check_rates(in_rate, out_rate)
        self._dtype = np.dtype(dtype)
        if self._dtype not in _SUPPORTED_DTYPES:
            raise TypeError(f"StreamResampler supports int16 or float32, not {self._dtype}")
        self._in_rate = in_rate
        self._out_rate = out_rate
        self._quality = quality
        self._empty = np.zeros(0, dtype=self._dtype)
        self._stream = self._new_stream()
        self._in_total = 0
        self._out_total = 0
        self._recent_input = self._empty
        self._recent_limit = max(1, round(in_rate * self.HELD_INPUT_LIMIT_S))

    def _new_stream(self) -> soxr.ResampleStream | None:
        if self._in_rate == self._out_rate:
            return None
        return soxr.ResampleStream(
            self._in_rate, self._out_rate, 1, dtype="float32", quality=self._quality
        )

    def _run(self, samples: np.ndarray, *, last: bool = False) -> np.ndarray:
        assert self._stream is not None
        if self._dtype == np.int16:
            result: np.ndarray = _to_int16(self._stream.resample_chunk(_to_float(samples), last))
        else:
            result = self._stream.resample_chunk(np.ascontiguousarray(samples), last)
        return result

    @property
    def in_rate(self) -> int:
        return self._in_rate

    @property
    def out_rate(self) -> int:
        return self._out_rate

    @property
    def dtype(self) -> np.dtype:
        return self._dtype

    @property
    def passthrough(self) -> bool:
        """True when the rates are equal and samples are returned unchanged."""
        return self._stream is None

    def process(self, pcm: np.ndarray) -> np.ndarray:
        """Feed the next piece of the signal (may be empty); returns the output ready so far."""
        samples = np.asarray(pcm)
        _check_samples(samples, self._dtype)
        if self._stream is None:
            return samples
        if samples.size == 0:
            return self._empty
        result = self._run(samples)
        self._in_total += len(samples)
        self._out_total += len(result)
        self._recent_input = np.concatenate([self._recent_input, samples])[-self._recent_limit :]
        return result

    def held_input(self) -> np.ndarray:
        """The latest input samples not yet represented in the output (at most 100 ms of them;
        empty for equal rates or after `flush`)."""
        if self._stream is None:
            return self._empty
        converted = -(-self._out_total * self._in_rate // self._out_rate)  # ceiling
        held = min(max(self._in_total - converted, 0), len(self._recent_input))
        return self._recent_input[len(self._recent_input) - held :]

    def flush(self) -> np.ndarray:
        """Drain the filter's tail at the end of the signal and get ready for a new one."""
        if self._stream is None:
            return self._empty
        tail = self._run(self._empty, last=True)
        self.reset()
        return tail

    def reset(self) -> None:
        """Drop all buffered input and start a fresh signal."""
        self._stream = self._new_stream()
        self._in_total = 0
        self._out_total = 0
        self._recent_input = self._empty
