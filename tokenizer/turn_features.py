"""Smart Turn v3's input: the last 8 s of a turn as an 80-bin Whisper log-mel [80, 800].

Smart Turn v3.x (Daily's end-of-turn model, a Whisper-tiny-style encoder) is fed exactly what
``transformers.WhisperFeatureExtractor(feature_size=80, chunk_length=8)`` gives for a window
of 8 s at 16 kHz (128 000 samples), built like this:

1. the window is the *last* 8 s of the turn; a shorter turn is padded with zeros at the
   *start*, so the turn's end, which is what the model judges, is always the window's end;
2. the whole window, padding included, is normalised to zero mean and unit variance
   (``(x - mean) / sqrt(var + 1e-7)``, the extractor's ``do_normalize=True``);
3. the Whisper log-mel of it (``tokenizer.mel``'s framing and scaling with 80 Slaney mel
   filters instead of 128): 128 000 samples give 800 frames.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from tokenizer.mel import HOP_LENGTH, SAMPLE_RATE, log_mel_spectrogram, mel_filterbank

SMART_TURN_SECONDS = 8
SMART_TURN_WINDOW_SAMPLES = SMART_TURN_SECONDS * SAMPLE_RATE
"""Samples of the window the model sees (the last 8 s of the turn)."""
SMART_TURN_N_MELS = 80
SMART_TURN_FRAMES = SMART_TURN_WINDOW_SAMPLES // HOP_LENGTH
"""Log-mel frames per window (800)."""
NORMALIZE_VARIANCE_EPSILON = 1e-7

_FILTERS = mel_filterbank(n_mels=SMART_TURN_N_MELS)
_INT16_SCALE = np.float32(1.0 / 32768.0)


def smart_turn_window(pcm16k: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """The last 8 s of 16 kHz mono audio as float32, zero-padded at the start to 128 000
    samples and normalised to zero mean, unit variance (steps 1 and 2 of the module doc).

    ``pcm16k`` is int16, or float32 in [-1, 1].
    """
    samples = np.asarray(pcm16k)
    if samples.ndim != 1:
        raise ValueError(f"Smart Turn needs mono (1-D) audio, got shape {samples.shape}")
    if samples.dtype != np.int16 and samples.dtype != np.float32:
        raise TypeError(f"Smart Turn needs int16 or float32 samples, got dtype {samples.dtype}")
    tail = samples[-SMART_TURN_WINDOW_SAMPLES:]
    window = np.zeros(SMART_TURN_WINDOW_SAMPLES, dtype=np.float32)
    if tail.size:
        if tail.dtype == np.int16:
            np.multiply(tail, _INT16_SCALE, out=window[-tail.size :], dtype=np.float32)
        else:
            window[-tail.size :] = tail
    mean = window.mean(dtype=np.float64)
    variance = window.var(dtype=np.float64)
    scale = 1.0 / np.sqrt(variance + NORMALIZE_VARIANCE_EPSILON)
    window -= np.float32(mean)
    window *= np.float32(scale)
    return window


def smart_turn_features(pcm16k: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Smart Turn's input features [80, 800] for the audio of a turn so far (int16, or
    float32 in [-1, 1], 16 kHz mono, any length; only the last 8 s are used)."""
    return log_mel_spectrogram(smart_turn_window(pcm16k), filters=_FILTERS)


def smart_turn_feature_batch(turns: Sequence[npt.ArrayLike]) -> npt.NDArray[np.float32]:
    """``smart_turn_features`` of each turn, stacked into the model's batch [B, 80, 800]."""
    batch = np.empty((len(turns), SMART_TURN_N_MELS, SMART_TURN_FRAMES), dtype=np.float32)
    for index, pcm16k in enumerate(turns):
        batch[index] = smart_turn_features(pcm16k)
    return batch
