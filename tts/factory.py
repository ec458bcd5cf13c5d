"""Choose and build the TTS backend named on the command line."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tts.base import TextToSpeech
from tts.cosyvoice_factory import CosyVoiceOptions, build_cosyvoice_tts
from tts.espeak import DEFAULT_VOICE, DEFAULT_WORDS_PER_MINUTE, EspeakTts
from tts.simulated import DEFAULT_FIRST_CHUNK_MS, SimulatedFirstChunkTts

TtsName = Literal["espeak", "simulated", "cosyvoice"]
TTS_NAMES: tuple[str, ...] = ("espeak", "simulated", "cosyvoice")


@dataclass(frozen=True)
class TtsOptions:
    name: TtsName = "espeak"
    espeak_voice: str = DEFAULT_VOICE
    espeak_words_per_minute: int = DEFAULT_WORDS_PER_MINUTE
    first_chunk_ms: float = DEFAULT_FIRST_CHUNK_MS
    cosyvoice: CosyVoiceOptions = field(default_factory=CosyVoiceOptions)


def build_tts(options: TtsOptions) -> TextToSpeech:
    if options.name == "espeak":
        return EspeakTts(
            voice=options.espeak_voice, words_per_minute=options.espeak_words_per_minute
        )
    if options.name == "simulated":
        espeak = EspeakTts(
            voice=options.espeak_voice, words_per_minute=options.espeak_words_per_minute
        )
        return SimulatedFirstChunkTts(espeak, first_chunk_ms=options.first_chunk_ms)
    if options.name == "cosyvoice":
        return build_cosyvoice_tts(options.cosyvoice)
    raise ValueError(f"unknown TTS backend {options.name!r}; choose one of {', '.join(TTS_NAMES)}")
