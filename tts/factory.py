"""Choose and build the TTS backend named on the command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tts.base import TextToSpeech
from tts.espeak import EspeakTts

TtsName = Literal["espeak"]
TTS_NAMES: tuple[str, ...] = ("espeak",)


@dataclass(frozen=True)
class TtsOptions:
    name: TtsName = "espeak"
    espeak_voice: str = "en-us"
    espeak_words_per_minute: int = 175


def build_tts(options: TtsOptions) -> TextToSpeech:
    if options.name == "espeak":
        return EspeakTts(
            voice=options.espeak_voice, words_per_minute=options.espeak_words_per_minute
        )
    raise ValueError(f"unknown TTS backend {options.name!r}; choose one of {', '.join(TTS_NAMES)}")
