"""Step-Audio's log-mel front end (Whisper-style, 128 bins at 100 frames/s), one-shot and streaming.

Framing convention (the same as Whisper and Step-Audio, which call `torch.stft(center=True)`):
the signal, optionally right-padded with `padding` zeros, is reflect-padded by n_fft/2 = 200
samples on both sides; frame t is the periodic-Hann-windowed slice starting at t * 160 of that
padded signal, i.e. centred on sample t * 160; the STFT's last frame is dropped. So
`len(pcm) + padding` samples give exactly `(len(pcm) + padding) // 160` frames. Step-Audio calls
it with padding=479 (`STEP_AUDIO_PADDING`), giving two more frames than `ceil(len / 160)`.

Log scaling (Whisper): log10 of the mel power clamped at 1e-10, floored at (maximum - 8), then
(x + 4) / 4. The one-shot maximum is taken over the whole signal; the stream uses the running
maximum of the frames produced so far, so it matches the one-shot result exactly once the
loudest frame has been seen (earlier quiet frames may be floored less).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

SAMPLE_RATE = 16_000
N_FFT = 400
HOP_LENGTH = 160
N_MELS = 128
STEP_AUDIO_PADDING = 479
"""Zeros Step-Audio appends to every audio item before its STFT."""

LOG_FLOOR_POWER = 1e-10
DYNAMIC_RANGE_LOG10 = 8.0

_HALF_WINDOW = N_FFT // 2
_EDGE = _HALF_WINDOW + 1  # reflect padding by 200 reads samples 1..200 of the edge

# Slaney's mel scale (Auditory Toolbox, Tech. Report 1998-010): linear below 1 kHz, 3 mel per
# 200 Hz; logarithmic above, 27 mel per factor 6.4. It is librosa's default (htk=False), which
# Whisper's mel_filters.npz and Step-Audio's `librosa.filters.mel(sr=16000, n_fft=400,
# n_mels=128)` use.
_SLANEY_HZ_PER_MEL = 200.0 / 3.0
_SLANEY_BREAK_HZ = 1000.0
_SLANEY_BREAK_MEL = _SLANEY_BREAK_HZ / _SLANEY_HZ_PER_MEL
_SLANEY_LOG_STEP = np.log(6.4) / 27.0


def hz_to_mel(hz: npt.ArrayLike) -> np.ndarray:
    """Slaney mel value of each frequency in Hz."""
    hz_array = np.asarray(hz, dtype=np.float64)
    linear = hz_array / _SLANEY_HZ_PER_MEL
    with np.errstate(divide="ignore"):
        logarithmic = _SLANEY_BREAK_MEL + np.log(hz_array / _SLANEY_BREAK_HZ) / _SLANEY_LOG_STEP
    return np.where(hz_array >= _SLANEY_BREAK_HZ, logarithmic, linear)


def mel_to_hz(mel: npt.ArrayLike) -> np.ndarray:
    """Frequency in Hz of each Slaney mel value."""
    mel_array = np.asarray(mel, dtype=np.float64)
    linear = mel_array * _SLANEY_HZ_PER_MEL
    logarithmic = _SLANEY_BREAK_HZ * np.exp(_SLANEY_LOG_STEP * (mel_array - _SLANEY_BREAK_MEL))
    return np.where(mel_array >= _SLANEY_BREAK_MEL, logarithmic, linear)


def mel_band_edges_hz(
    n_mels: int = N_MELS, sample_rate: int = SAMPLE_RATE, f_min: float = 0.0
) -> np.ndarray:
    """The n_mels + 2 frequencies (Hz) that delimit the triangular filters: filter m rises from
    edge m, peaks at edge m + 1 (its centre) and falls to zero at edge m + 2."""
    mels = np.linspace(hz_to_mel(f_min), hz_to_mel(sample_rate / 2.0), n_mels + 2)
    return mel_to_hz(mels)


def mel_filterbank(
    sample_rate: int = SAMPLE_RATE, n_fft: int = N_FFT, n_mels: int = N_MELS
) -> npt.NDArray[np.float32]:
    """Slaney-normalised triangular mel filters, shape [n_mels, n_fft // 2 + 1].

    Each triangle spans two neighbouring band edges around its centre and is scaled by
    2 / (bandwidth in Hz) so every filter has the same area ("slaney" norm), matching
    `librosa.filters.mel(sr, n_fft, n_mels)` with its defaults.
    """
    fft_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_band_edges_hz(n_mels, sample_rate)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (fft_hz[None, :] - lower) / (centre - lower)
    falling = (upper - fft_hz[None, :]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return (triangles * (2.0 / (upper - lower))).astype(np.float32)


def hann_window(n_fft: int = N_FFT) -> npt.NDArray[np.float32]:
    """Periodic Hann window (torch.hann_window's default), not numpy's symmetric np.hanning."""
    return (0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)


def _as_float_audio(pcm: np.ndarray) -> npt.NDArray[np.float32]:
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"log-mel needs mono (1-D) samples, got shape {samples.shape}")
    if samples.dtype == np.int16:
        return samples.astype(np.float32) * np.float32(1.0 / 32768.0)
    if samples.dtype == np.float32:
        return samples
    raise TypeError(f"log-mel needs int16 or float32 samples, got dtype {samples.dtype}")


def _log10_mel_of_frames(
    padded: npt.NDArray[np.float32], n_frames: int, window: np.ndarray, filters: np.ndarray
) -> npt.NDArray[np.float32]:
    """log10 mel power [n_mels, n_frames] of the frames starting every hop in a padded signal."""
    if n_frames <= 0:
        return np.zeros((filters.shape[0], 0), dtype=np.float32)
    frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP_LENGTH][:n_frames]
    spectrum = np.fft.rfft(frames * window, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    mel_power = filters @ power.T
    return np.log10(np.maximum(mel_power, np.float32(LOG_FLOOR_POWER)))


def normalize_log_mel(
    log10_mel: npt.NDArray[np.float32], ceiling: float | None = None
) -> npt.NDArray[np.float32]:
    """Whisper's scaling of log10 mel power: floor at (ceiling - 8), then (x + 4) / 4.

    `ceiling` defaults to the maximum of `log10_mel` (the one-shot behaviour).
    """
    if ceiling is None:
        ceiling = float(log10_mel.max()) if log10_mel.size else 0.0
    floored = np.maximum(log10_mel, np.float32(ceiling - DYNAMIC_RANGE_LOG10))
    return ((floored + np.float32(4.0)) / np.float32(4.0)).astype(np.float32)


def log10_mel_spectrogram(
    pcm16k: np.ndarray, padding: int = 0, filters: np.ndarray | None = None
) -> npt.NDArray[np.float32]:
    """Unscaled log10 mel power [n_mels, (len + padding) // 160] (framing: see the module doc)."""
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding}")
    filters = mel_filterbank() if filters is None else filters
    audio = _as_float_audio(pcm16k)
    if padding:
        audio = np.concatenate((audio, np.zeros(padding, dtype=np.float32)))
    n_frames = audio.size // HOP_LENGTH
    if n_frames == 0:
        return np.zeros((filters.shape[0], 0), dtype=np.float32)
    padded = np.pad(audio, _HALF_WINDOW, mode="reflect")
    return _log10_mel_of_frames(padded, n_frames, hann_window(), filters)


def log_mel_spectrogram(
    pcm16k: np.ndarray, padding: int = 0, filters: np.ndarray | None = None
) -> npt.NDArray[np.float32]:
    """Whisper/Step-Audio log-mel features [128, (len + padding) // 160] of 16 kHz mono audio.

    int16 input is scaled by 1/32768 first; float32 input is taken as already in [-1, 1).
    Pass `padding=STEP_AUDIO_PADDING` for exactly what Step-Audio feeds its encoder, and a
    prebuilt `mel_filterbank()` as `filters` to avoid rebuilding it per call.
    """
    return normalize_log_mel(log10_mel_spectrogram(pcm16k, padding, filters))


class LogMelStream:
    """Streaming log-mel front end: push 16 kHz audio as it arrives, get each new frame once.

    State is explicit: the samples that later frames still need (the n_fft - hop overlap plus
    anything not yet a full frame), the index of the next frame, and the running maximum used
    for scaling. Frame t >= 1 needs the samples before t * 160 + 200 (frame 0 needs 201, for
    its left reflect padding) and is returned as soon as they have arrived; `flush` produces
    the last frames, which need the right-hand reflect padding.
    The frames of all `push` calls plus `flush` equal `log_mel_spectrogram` of the whole signal
    (see the module doc about the scaling maximum); with `normalize=False` they are the
    unscaled log10 mel power and equal `log10_mel_spectrogram` exactly.
    """

    def __init__(
        self, padding: int = 0, normalize: bool = True, filters: np.ndarray | None = None
    ) -> None:
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}")
        self._padding = padding
        self._normalize = normalize
        self._filters = mel_filterbank() if filters is None else filters
        self._window = hann_window()
        self.reset()

    @property
    def frames_emitted(self) -> int:
        """Frames returned since the start (or the last reset/flush)."""
        return self._next_frame

    @property
    def samples_received(self) -> int:
        return self._samples_received

    @property
    def ceiling(self) -> float | None:
        """The running maximum of log10 mel power used for scaling (None before any frame)."""
        return self._ceiling

    def reset(self) -> None:
        """Forget all audio and start a new signal."""
        # Before `_started`, `_buffer` holds raw samples; after, the left-reflect-padded signal
        # from the start of frame `_next_frame` onwards.
        self._buffer = np.zeros(0, dtype=np.float32)
        self._started = False
        self._next_frame = 0
        self._samples_received = 0
        self._ceiling: float | None = None

    def push(self, pcm16k: np.ndarray) -> npt.NDArray[np.float32]:
        """Add audio; returns the frames [n_mels, k] that became complete (k may be 0)."""
        audio = _as_float_audio(pcm16k)
        self._samples_received += audio.size
        self._buffer = np.concatenate((self._buffer, audio))
        if not self._started:
            if self._buffer.size < _EDGE:
                return self._empty()
            left = self._buffer[_HALF_WINDOW:0:-1]
            self._buffer = np.concatenate((left, self._buffer))
            self._started = True
        n_frames = 0 if self._buffer.size < N_FFT else (self._buffer.size - N_FFT) // HOP_LENGTH + 1
        return self._emit(self._buffer, n_frames)

    def flush(self) -> npt.NDArray[np.float32]:
        """End of the signal: returns the remaining frames and resets for a new signal."""
        total_frames = (self._samples_received + self._padding) // HOP_LENGTH
        remaining = total_frames - self._next_frame
        if remaining <= 0:
            frames = self._empty()
        elif not self._started:
            # Too short to have started (under 201 samples): all of it is still buffered.
            frames = self._scale(
                log10_mel_spectrogram(self._buffer, self._padding, self._filters)[:, -remaining:]
            )
        else:
            tail = np.concatenate((self._buffer, np.zeros(self._padding, dtype=np.float32)))
            right = tail[-2 : -_EDGE - 1 : -1]
            frames = self._emit(np.concatenate((tail, right)), remaining)
        self.reset()
        return frames

    def _empty(self) -> npt.NDArray[np.float32]:
        return np.zeros((self._filters.shape[0], 0), dtype=np.float32)

    def _emit(self, padded: np.ndarray, n_frames: int) -> npt.NDArray[np.float32]:
        if n_frames <= 0:
            return self._empty()
        log10_mel = _log10_mel_of_frames(padded, n_frames, self._window, self._filters)
        self._buffer = padded[n_frames * HOP_LENGTH :].copy()
        self._next_frame += n_frames
        return self._scale(log10_mel)

    def _scale(self, log10_mel: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        if not self._normalize or log10_mel.size == 0:
            return log10_mel
        peak = float(log10_mel.max())
        self._ceiling = peak if self._ceiling is None else max(self._ceiling, peak)
        return normalize_log_mel(log10_mel, self._ceiling)
