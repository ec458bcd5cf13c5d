"""Audio chunk arithmetic for the engine: Step-Audio token counts, 25 s item splitting, and the
listen-while-thinking `SpeechChunker` that cuts a live turn at quiet points.

Token arithmetic follows StepFun's public code (Step-Audio 2 `utils.py` and the vLLM fork's
`step_audio2` processor and model):

- front end: `len + 479` zero-padded samples -> T = (len + 479) // 160 mel frames at 100 Hz,
  i.e. ceil(len / 160) frames covering the audio plus 2 frames of padding;
- encoder: conv (k3, s1, p1), conv (k3, s2, p1) -> 50 Hz, avg-pool (2, 2) -> 25 Hz,
  together E = (T + 1) // 2 // 2;
- adaptor: conv (k3, s2, p1) -> 12.5 Hz, (E + 2 - 3) // 2 + 1 embeddings, each one
  `<audio_patch>` token, wrapped in `<audio_start>` ... `<audio_end>`.

The vLLM fork (what the service talks to) feeds the encoder all T frames, as above; the
transformers reference code counts from T - 2 and can give one embedding fewer when
ceil(len / 160) % 4 is 1 or 2 (for example 10.01 s: 126 in vLLM, 125 in transformers).
"""

from __future__ import annotations

import copy
import math

import numpy as np

from tokenizer import ENGINE_SAMPLE_RATE

MEL_HOP_SAMPLES = 160
STEP_AUDIO_PADDING_SAMPLES = 479
AUDIO_MARKER_TOKENS = 2
"""`<audio_start>` and `<audio_end>` around each audio item's `<audio_patch>` tokens."""

MAX_ENGINE_CHUNK_S = 25.0
"""StepFun's client cuts audio into items of at most 25 s."""
ENGINE_ITEM_LIMIT_S = 29.98
"""The vLLM fork rejects audio items longer than this (the encoder has 1500 positions at 50 Hz)."""

ENERGY_WINDOW_MS = 20.0
"""Length of the RMS window whose quietest position is chosen as a cut point."""


def _check_samples(n: int) -> None:
    if n < 0:
        raise ValueError(f"sample count must be >= 0, got {n}")


def mel_frames_for_samples(n: int) -> int:
    """Mel frames (100 Hz) covering n samples at 16 kHz: ceil(n / 160); 10 s -> 1000."""
    _check_samples(n)
    return -(-n // MEL_HOP_SAMPLES)


def engine_mel_frames_for_samples(n: int) -> int:
    """Mel frames Step-Audio's front end computes for n samples, its 479 padding samples
    included: (n + 479) // 160 == mel_frames_for_samples(n) + 2; 10 s -> 1002."""
    _check_samples(n)
    return (n + STEP_AUDIO_PADDING_SAMPLES) // MEL_HOP_SAMPLES


def audio_embeddings_for_samples(n: int) -> int:
    """Audio embeddings (`<audio_patch>` tokens, 12.5 Hz) the vLLM-served Step-Audio encoder and
    adaptor produce for one audio item of n samples at 16 kHz; 10 s -> 125, 25 s -> 313."""
    encoder_frames = (engine_mel_frames_for_samples(n) + 1) // 2 // 2
    return (encoder_frames + 2 * 1 - 3) // 2 + 1


def audio_prompt_tokens_for_samples(n: int) -> int:
    """Prompt tokens one audio item of n samples costs: embeddings + start/end markers;
    10 s -> 127."""
    return audio_embeddings_for_samples(n) + AUDIO_MARKER_TOKENS


def _quietest_cut(pcm: np.ndarray, lo: int, hi: int, target: int, sample_rate: int) -> int:
    """The index in [lo, hi] at the centre of the lowest-energy 20 ms window; ties go to the
    index nearest `target`."""
    half = max(1, round(sample_rate * ENERGY_WINDOW_MS / 1000.0) // 2)
    # Window centred on c covers [c - half, c + half), clipped to the signal.
    start = max(0, lo - half)
    stop = min(pcm.size, hi + half)
    segment = pcm[start:stop].astype(np.float64)
    cumulative = np.concatenate(([0.0], np.cumsum(segment * segment)))
    centres = np.arange(lo, hi + 1)
    left = np.clip(centres - half, start, stop) - start
    right = np.clip(centres + half, start, stop) - start
    widths = np.maximum(right - left, 1)
    mean_square = (cumulative[right] - cumulative[left]) / widths
    quietest = mean_square <= mean_square.min() * (1.0 + 1e-9) + 1e-12
    candidates = centres[quietest]
    return int(candidates[np.argmin(np.abs(candidates - target))])


def find_low_energy_cut(
    pcm: np.ndarray, target: int, window: int, sample_rate: int = ENGINE_SAMPLE_RATE
) -> int:
    """A cut index within `window` samples of `target` (clipped to [0, len]) at the centre of the
    quietest 20 ms (lowest RMS); among equally quiet places the one nearest `target`."""
    samples = np.asarray(pcm)
    if samples.ndim != 1:
        raise ValueError(f"needs mono (1-D) samples, got shape {samples.shape}")
    if window < 0:
        raise ValueError(f"window must be >= 0, got {window}")
    target = min(max(target, 0), samples.size)
    lo = max(0, target - window)
    hi = min(samples.size, target + window)
    if samples.size == 0 or lo == hi:
        return target
    return _quietest_cut(samples, lo, hi, target, sample_rate)


def split_for_engine(
    pcm16k: np.ndarray,
    max_seconds: float = MAX_ENGINE_CHUNK_S,
    search_seconds: float = 2.0,
    sample_rate: int = ENGINE_SAMPLE_RATE,
) -> list[np.ndarray]:
    """Cut audio into the fewest items of at most `max_seconds`, of about equal length, each cut at
    the quietest 20 ms within `search_seconds` of its even-split position (as far as the length
    limit allows). Items are views of `pcm16k`; empty audio gives no items."""
    samples = np.asarray(pcm16k)
    if samples.ndim != 1:
        raise ValueError(f"needs mono (1-D) samples, got shape {samples.shape}")
    max_samples = int(max_seconds * sample_rate)
    if max_samples < 1:
        raise ValueError(f"max_seconds={max_seconds} holds no samples at {sample_rate} Hz")
    search = max(0, int(search_seconds * sample_rate))
    total = samples.size
    pieces: list[np.ndarray] = []
    start = 0
    while total - start > max_samples:
        remaining = total - start
        pieces_left = math.ceil(remaining / max_samples)
        target = start + round(remaining / pieces_left)
        # The cut must keep this piece within the limit and leave few enough samples after it
        # for the pieces_left - 1 pieces still to come.
        lo = max(target - search, total - (pieces_left - 1) * max_samples, start + 1)
        hi = min(target + search, start + max_samples)
        cut = _quietest_cut(samples, lo, hi, target, sample_rate) if lo < hi else lo
        pieces.append(samples[start:cut])
        start = cut
    if start < total:
        pieces.append(samples[start:])
    return pieces


class SpeechChunker:
    """Streaming cutter of a live user turn into engine audio items (listen while thinking).

    Once `chunk_seconds + search_seconds` of audio are pending, it closes a chunk at the
    quietest 20 ms within `search_seconds` of the `chunk_seconds` mark and keeps the rest.
    `finish` returns what is left when the turn ends. All chunks joined reproduce the input
    exactly, and no chunk is longer than `chunk_seconds + search_seconds` <= `max_seconds`.
    Chunks are fresh arrays (input is copied on push).
    """

    def __init__(
        self,
        chunk_seconds: float = 2.0,
        search_seconds: float = 0.5,
        max_seconds: float = MAX_ENGINE_CHUNK_S,
        sample_rate: int = ENGINE_SAMPLE_RATE,
    ) -> None:
        if search_seconds < 0 or chunk_seconds <= search_seconds:
            raise ValueError(
                f"need 0 <= search_seconds < chunk_seconds, got {search_seconds}, {chunk_seconds}"
            )
        if chunk_seconds + search_seconds > max_seconds:
            raise ValueError(
                f"chunk_seconds + search_seconds ({chunk_seconds + search_seconds}) "
                f"exceeds max_seconds ({max_seconds})"
            )
        self._sample_rate = sample_rate
        self._chunk_samples = round(chunk_seconds * sample_rate)
        self._search_samples = round(search_seconds * sample_rate)
        self._max_samples = int(max_seconds * sample_rate)
        self.reset()

    @property
    def pending_samples(self) -> int:
        """Samples pushed but not yet returned in a chunk."""
        return self._pending_count

    @property
    def emitted_samples(self) -> int:
        """Samples returned in chunks so far (the start offset of the next chunk)."""
        return self._emitted

    def reset(self) -> None:
        """Forget the current turn."""
        self._pending: list[np.ndarray] = []
        self._pending_count = 0
        self._emitted = 0

    def push(self, pcm16k: np.ndarray) -> list[np.ndarray]:
        """Add audio of the ongoing turn; returns the chunks closed by it (usually none)."""
        samples = np.asarray(pcm16k)
        if samples.ndim != 1:
            raise ValueError(f"needs mono (1-D) samples, got shape {samples.shape}")
        if samples.size == 0:
            return []
        self._pending.append(samples.copy())
        self._pending_count += samples.size
        needed = self._chunk_samples + self._search_samples
        if self._pending_count < needed:
            return []
        buffer = np.concatenate(self._pending)
        chunks: list[np.ndarray] = []
        start = 0
        while buffer.size - start >= needed:
            target = start + self._chunk_samples
            lo = max(target - self._search_samples, start + 1)
            hi = target + self._search_samples
            cut = _quietest_cut(buffer, lo, hi, target, self._sample_rate) if lo < hi else target
            chunks.append(buffer[start:cut])
            start = cut
        rest = buffer[start:].copy()
        self._pending = [rest] if rest.size else []
        self._pending_count = rest.size
        self._emitted += start
        return chunks

    def copy(self) -> SpeechChunker:
        """An independent chunker in the same state (pending audio is shared, never mutated)."""
        clone = copy.copy(self)
        clone._pending = list(self._pending)
        return clone

    def finish(self) -> np.ndarray | None:
        """The turn ended: returns the remaining audio as the last chunk (None if nothing is
        pending) and starts a new turn."""
        rest = np.concatenate(self._pending) if self._pending else None
        self.reset()
        return rest
