"""Shared test audio for the tokenizer tests: synthetic tones and real espeak-ng speech."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tokenizer.pcm import read_wav
from tokenizer.resample import resample

SPEECH_TEXT = (
    "Hello there. This is a test of the speech chunker. "
    "It should cut between words, where the speaker pauses. "
    "Then it hands each piece to the engine, while the person is still talking."
)


@pytest.fixture(scope="session")
def espeak_wav_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A WAV file of espeak-ng speaking SPEECH_TEXT (22050 Hz mono PCM16)."""
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(path), SPEECH_TEXT], check=True, timeout=60)
    return path


@pytest.fixture(scope="session")
def speech_16k(espeak_wav_path: Path) -> np.ndarray:
    """espeak-ng speech at 16 kHz int16 (about 10 s)."""
    pcm, rate = read_wav(espeak_wav_path)
    return resample(pcm, rate, 16_000)
