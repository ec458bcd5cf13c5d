"""Noisy test audio and the VAD's false speech starts on it (tests and benchmarks).

``fan_noise`` is a steady machine noise (brown-ish broadband plus a motor's hum and blade
tone); ``babble`` is several espeak-ng talkers at once. ``noisy_conversation`` puts
utterances between stretches of noise only, mixed at a chosen SNR, and knows where the
speech is; ``speech_starts`` runs it through a session's real input side (stages, silero,
server_vad) and returns where each turn started.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from benchmarks.harness.speech import synthesize
from realtime.protocol.session_config import ServerVad
from realtime.turns.input import TurnEvent, TurnInput, TurnSettings, UserSpeechStarted
from realtime.turns.stages import AudioStage
from realtime.turns.vad import VadBatcher

RATE = 16_000
FRAME = 320  # 20 ms

UTTERANCES = (
    "Could you book a table for two at eight tonight?",
    "I would like to change my delivery address please.",
    "What time does the last train to the airport leave?",
    "Yes, that sounds good, go ahead.",
)
BABBLE_TEXTS = (
    "The meeting moved to Thursday afternoon in the big room.",
    "She said the parcel would arrive before the weekend.",
    "We walked along the river until the sun went down.",
    "Please remember to bring the documents tomorrow morning.",
    "The children were playing football in the park all day.",
    "He ordered coffee and a slice of lemon cake for later.",
)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.asarray(x, dtype=np.float64) ** 2)))


def fan_noise(seconds: float, seed: int = 0) -> np.ndarray:
    """Steady fan noise at unit RMS (float64): low-heavy broadband, a 100 Hz motor hum with
    harmonics, a 240 Hz blade tone, slowly wavering."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    white = rng.normal(0.0, 1.0, n)
    brown = np.cumsum(white)
    brown -= np.convolve(brown, np.ones(320) / 320, mode="same")  # drop the drift below ~50 Hz
    brown /= _rms(brown)
    t = np.arange(n) / RATE
    wobble = 1.0 + 0.1 * np.sin(2 * np.pi * 0.7 * t)
    tones = sum(
        np.sin(2 * np.pi * f * t + rng.uniform(0, 6.28)) / k
        for k, f in enumerate((100, 200, 300, 240), 1)
    )
    noise = brown + 0.5 * white + 0.4 * wobble * tones
    return noise / _rms(noise)


def babble(seconds: float, talkers: int = 6, seed: int = 0) -> np.ndarray:
    """``talkers`` espeak-ng voices talking over each other, at unit RMS (float64)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    mix = np.zeros(n)
    for k in range(talkers):
        speed = 0.85 + 0.3 * rng.random()  # pitch and pace differ from talker to talker
        voice = synthesize(BABBLE_TEXTS[k % len(BABBLE_TEXTS)], round(RATE * speed))
        voice = voice.astype(np.float64)
        reps = np.tile(voice, n // len(voice) + 2)
        offset = int(rng.integers(0, len(voice)))
        mix += reps[offset : offset + n] / _rms(voice)
    return mix / _rms(mix)


@dataclass(frozen=True)
class NoisyConversation:
    pcm: np.ndarray  # 16 kHz int16
    speech_spans: tuple[tuple[int, int], ...]  # [start, end) samples of each utterance


def noisy_conversation(
    noise: np.ndarray, snr_db: float, *, gap_s: float = 2.5, utterances: Sequence[str] = UTTERANCES
) -> NoisyConversation:
    """Noise only for ``gap_s``, an utterance, noise only, ... mixed at ``snr_db`` (speech RMS
    over the utterances against noise RMS). ``noise`` (unit RMS) must be long enough."""
    speech = [synthesize(text, RATE) for text in utterances]
    gap = round(gap_s * RATE)
    total = gap + sum(len(s) + gap for s in speech)
    if len(noise) < total:
        raise ValueError(f"noise is {len(noise) / RATE:.1f} s, needs {total / RATE:.1f} s")
    clean = np.zeros(total)
    spans = []
    at = gap
    for s in speech:
        clean[at : at + len(s)] = s
        spans.append((at, at + len(s)))
        at += len(s) + gap
    speech_rms = _rms(np.concatenate(speech))
    mixed = clean + noise[:total] * speech_rms / 10 ** (snr_db / 20)
    pcm = np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
    return NoisyConversation(pcm, tuple(spans))


class _Starts:
    def __init__(self) -> None:
        self.starts_ms: list[int] = []

    def on_turn_event(self, event: TurnEvent) -> None:
        if isinstance(event, UserSpeechStarted):
            self.starts_ms.append(event.audio_start_ms)


async def speech_starts(
    vad: VadBatcher, pcm: np.ndarray, stage: AudioStage | None, detection: ServerVad
) -> list[int]:
    """Where each turn the input side saw started (ms, prefix padding taken off), with
    ``stage`` as its noise reduction."""
    starts = _Starts()
    turn_input = TurnInput(vad, starts, settings=TurnSettings(), capacity_samples=len(pcm) + RATE)
    if stage is not None:
        turn_input.set_stage(stage.name, stage)
    turn_input.configure(detection)
    turn_input.start("noise")
    try:
        for start in range(0, len(pcm), FRAME):
            turn_input.append(pcm[start : start + FRAME], RATE)
            async with asyncio.timeout(10.0):
                while not turn_input.caught_up:  # noqa: ASYNC110 - the VAD loop's own task
                    await asyncio.sleep(0.001)
    finally:
        await turn_input.aclose()
    return [ms + detection.prefix_padding_ms for ms in starts.starts_ms]


def false_starts(
    starts_ms: Sequence[int], spans: Sequence[tuple[int, int]], slack_ms: int = 300
) -> int:
    """Starts that are not in (or just before) an utterance."""

    def in_speech(ms: int) -> bool:
        return any(a / RATE * 1000 - slack_ms <= ms <= b / RATE * 1000 for a, b in spans)

    return sum(not in_speech(ms) for ms in starts_ms)
