"""Audio that spells its text: fake CosyVoice servers and models speak each character as a run
of samples whose value encodes it, so tests can read back which text a piece of audio speaks."""

from __future__ import annotations

import numpy as np

SAMPLES_PER_CHAR = 480  # 20 ms at 24 kHz
_STEP = 128


def char_value(char: str) -> int:
    return (ord(char) % 128 + 1) * _STEP


def encode_text(text: str, samples_per_char: int = SAMPLES_PER_CHAR) -> np.ndarray:
    """int16 PCM: ``samples_per_char`` samples per character of ``text``."""
    values = np.array([char_value(char) for char in text], dtype=np.int16)
    return np.repeat(values, samples_per_char)


def encode_float(text: str, samples_per_char: int = SAMPLES_PER_CHAR) -> np.ndarray:
    """The same as float32 in [-1, 1), as CosyVoice's ``tts_speech`` tensors hold it."""
    return encode_text(text, samples_per_char).astype(np.float32) / np.float32(32768.0)


def decode_text(pcm: np.ndarray, samples_per_char: int = SAMPLES_PER_CHAR) -> str:
    """Read back the characters of audio made by ``encode_text`` (whole characters only)."""
    usable = len(pcm) - len(pcm) % samples_per_char
    values = np.asarray(pcm[:usable]).reshape(-1, samples_per_char)[:, 0].astype(np.int64)
    return "".join(chr(value // _STEP - 1) for value in values)
