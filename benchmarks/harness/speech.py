"""Test audio: espeak-ng speech (16 kHz by default), silence, noise, and where the speech is."""

from __future__ import annotations

import io
import shutil
import subprocess
import wave
from dataclasses import dataclass

import numpy as np
import soxr

from tts.espeak import espeak_environment

SAMPLE_RATE = 16_000

SENTENCES = (
    "Hello there, how are you doing today?",
    "What is the weather like in Paris?",
    "Please tell me a short story about a dog.",
    "One two three four five six seven.",
    "Can you remind me to buy some milk?",
)
"""The utterances the latency benchmarks speak, so that their figures compare."""


def synthesize(text: str, sample_rate: int = SAMPLE_RATE, *, ssml: bool = False) -> np.ndarray:
    """espeak-ng speaking ``text``, resampled from its 22050 Hz to mono int16 at ``sample_rate``.

    With ``ssml``, ``text`` is SSML: ``<break time="800ms"/>`` inside a sentence pauses the
    speaker mid-thought, with the sentence's intonation carrying on after the pause (a clause
    spoken on its own ends in a sentence-final fall instead).
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (Debian package espeak-ng)")
    command = ["espeak-ng", "--stdout", *(["-m"] if ssml else []), text]
    wav_bytes = subprocess.run(
        command, capture_output=True, check=True, timeout=60, env=espeak_environment()
    ).stdout
    with wave.open(io.BytesIO(wav_bytes)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2")
    resampled = soxr.resample(samples.astype(np.float32) / 32768.0, rate, sample_rate)
    return np.clip(np.round(resampled * 32767.0), -32768, 32767).astype(np.int16)


def silence(seconds: float, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    return np.zeros(round(seconds * sample_rate), dtype=np.int16)


def low_noise(seconds: float, dbfs: float = -60.0, seed: int = 0) -> np.ndarray:
    """White noise at ``dbfs`` RMS (e.g. a quiet room's floor)."""
    rms = 32768.0 * 10 ** (dbfs / 20)
    noise = np.random.default_rng(seed).normal(0.0, rms, round(seconds * SAMPLE_RATE))
    return np.clip(np.round(noise), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class SpeechSpan:
    """Where the sound is, from short-time energy: [start_sample, end_sample)."""

    start_sample: int
    end_sample: int


def energy_spans(
    pcm: np.ndarray, floor_dbfs: float = -40.0, frame: int = 160, min_gap_s: float = 0.6
) -> list[SpeechSpan]:
    """Runs of 10 ms frames above ``floor_dbfs``, merging gaps shorter than ``min_gap_s``."""
    usable = len(pcm) // frame * frame
    frames = pcm[:usable].astype(np.float64).reshape(-1, frame) / 32768.0
    level = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    loud = np.flatnonzero(level > floor_dbfs)
    spans: list[SpeechSpan] = []
    for index in loud:
        start, end = int(index) * frame, (int(index) + 1) * frame
        if spans and start - spans[-1].end_sample < min_gap_s * SAMPLE_RATE:
            spans[-1] = SpeechSpan(spans[-1].start_sample, end)
        else:
            spans.append(SpeechSpan(start, end))
    return spans


def frames_of(pcm: np.ndarray, frame_samples: int) -> list[np.ndarray]:
    """``pcm`` cut into transport-sized frames (the last one may be short)."""
    return [pcm[i : i + frame_samples] for i in range(0, len(pcm), frame_samples)]
