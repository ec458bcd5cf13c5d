"""The utterances a benchmark says: WAV files from a folder, or phrases spoken by espeak-ng."""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from realtime.client.turn import voiced_end
from tokenizer.pcm import AudioFormatError, read_wav
from tokenizer.resample import resample
from tts.espeak import espeak_environment

BUILTIN_PHRASES = (
    "Hello there, how are you doing today?",
    "What is the weather like this afternoon?",
    "Could you tell me a short story about a cat?",
    "Please remind me to call my sister tomorrow.",
    "How far is it from the station to the harbour?",
    "I would like to book a table for two people.",
)
DEFAULT_VOICE = "en-us"
_ESPEAK_TIMEOUT_S = 60.0


class AudioSetError(Exception):
    """The audio set could not be built (no WAV files, unreadable file, no espeak-ng)."""


@dataclass(frozen=True)
class Utterance:
    """One thing to say: mono int16 samples at ``rate``, leading silence removed."""

    name: str
    pcm: npt.NDArray[np.int16]
    rate: int

    @property
    def duration_s(self) -> float:
        return len(self.pcm) / self.rate

    def at_rate(self, rate: int) -> Utterance:
        """This utterance resampled to ``rate`` (itself when the rate already matches)."""
        if rate == self.rate:
            return self
        pcm = np.asarray(resample(self.pcm, self.rate, rate), dtype=np.int16)
        return Utterance(self.name, pcm, rate)

    @property
    def voiced_samples(self) -> int:
        """Samples up to the end of the last voiced frame (what counts as speech)."""
        return voiced_end(self.pcm, self.rate)


def _trim_leading_silence(pcm: npt.NDArray[np.int16], rate: int) -> npt.NDArray[np.int16]:
    """Drop the silence before the first voiced frame, so that speech starts at sample 0.

    A barge-in is timed from the first sample it sends; leading silence would count as
    reaction time. ``voiced_end`` on the reversed signal finds the first voiced frame.
    """
    start = len(pcm) - voiced_end(pcm[::-1], rate)
    return pcm[start:]


def _utterance(name: str, pcm: npt.NDArray[np.int16], rate: int) -> Utterance:
    trimmed = _trim_leading_silence(pcm, rate)
    if len(trimmed) == 0 or not np.any(trimmed):
        raise AudioSetError(f"{name}: the audio is silent")
    return Utterance(name, np.ascontiguousarray(trimmed), rate)


def load_wav_dir(directory: Path) -> list[Utterance]:
    """Every ``*.wav`` in ``directory`` (sorted by name) as an utterance."""
    if not directory.is_dir():
        raise AudioSetError(f"--audio {directory}: not a directory")
    paths = sorted(path for path in directory.iterdir() if path.suffix.lower() == ".wav")
    if not paths:
        raise AudioSetError(f"--audio {directory}: no .wav files in it")
    utterances = []
    for path in paths:
        try:
            pcm, rate = read_wav(path)
        except (AudioFormatError, OSError) as exc:
            raise AudioSetError(f"{path}: {exc}") from exc
        utterances.append(_utterance(path.name, pcm, rate))
    return utterances


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/step-realtime/bench-audio`` (``~/.cache`` when unset)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "step-realtime" / "bench-audio"


def _cache_path(cache_dir: Path, phrase: str, voice: str) -> Path:
    digest = hashlib.sha256(f"espeak-ng\0{voice}\0{phrase}".encode()).hexdigest()[:20]
    return cache_dir / f"{digest}.wav"


async def _speak(phrase: str, voice: str, path: Path) -> None:
    """espeak-ng writes ``phrase`` to ``path`` (through a temporary file: never half-written)."""
    partial = path.with_suffix(f".{os.getpid()}.partial")
    process = await asyncio.create_subprocess_exec(
        "espeak-ng", "-v", voice, "-w", str(partial), phrase,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        env=espeak_environment(),
    )  # fmt: skip
    try:
        async with asyncio.timeout(_ESPEAK_TIMEOUT_S):
            _, stderr = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AudioSetError(f"espeak-ng took over {_ESPEAK_TIMEOUT_S:g} s on {phrase!r}") from None
    if process.returncode != 0:
        partial.unlink(missing_ok=True)
        message = stderr.decode(errors="replace").strip()
        raise AudioSetError(f"espeak-ng failed on {phrase!r}: {message}")
    partial.replace(path)


async def builtin_set(
    cache_dir: Path,
    phrases: tuple[str, ...] = BUILTIN_PHRASES,
    voice: str = DEFAULT_VOICE,
) -> list[Utterance]:
    """``phrases`` spoken by espeak-ng, synthesized once into ``cache_dir`` and reused."""
    if not phrases:
        raise AudioSetError("no phrases to synthesize")
    paths = [_cache_path(cache_dir, phrase, voice) for phrase in phrases]

    def missing_ones() -> list[tuple[str, Path]]:
        cache_dir.mkdir(parents=True, exist_ok=True)
        pairs = zip(phrases, paths, strict=True)
        return [(phrase, path) for phrase, path in pairs if not path.exists()]

    missing = await asyncio.to_thread(missing_ones)
    if missing:
        if shutil.which("espeak-ng") is None:
            raise AudioSetError(
                "the built-in audio set needs espeak-ng (Debian package espeak-ng); "
                "or pass --audio DIR with WAV files"
            )
        await asyncio.gather(*(_speak(phrase, voice, path) for phrase, path in missing))

    def load() -> list[Utterance]:
        utterances = []
        for phrase, path in zip(phrases, paths, strict=True):
            pcm, rate = read_wav(path)
            utterances.append(_utterance(phrase, pcm, rate))
        return utterances

    return await asyncio.to_thread(load)
