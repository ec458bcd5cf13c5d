"""CosyVoice voices: built-in speakers and zero-shot prompt voices, and which one a session gets.

CosyVoice speaks in one of two ways. A *built-in speaker* is an id in the model's
``spk2info.pt`` (CosyVoice-300M-SFT has some, e.g. ``英文女``; CosyVoice 2 and 3 ship none).
A *prompt voice* clones a short recording: ``prompt_wav`` plus ``prompt_text``, the words
spoken in it (zero-shot); without ``prompt_text`` the recording only gives the timbre
(cross-lingual); with ``instruct_text`` it also says how to speak (CosyVoice 2/3
``inference_instruct2``).

CosyVoice 3 wants a system prompt ending in ``<|endofprompt|>`` before the prompt text
(upstream ``example.py``; its bi-streaming LLM asserts it): ``with_end_of_prompt`` adds
upstream's own default when the text has none.

``cosyvoice_request`` is where a voice and a text become what CosyVoice is asked (its
inference mode and texts, markers added); the HTTP, gRPC and in-process backends only carry it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

CosyVoiceVersion = Literal[2, 3]
END_OF_PROMPT = "<|endofprompt|>"
DEFAULT_SYSTEM_PROMPT = "You are a helpful assistant."


@dataclass(frozen=True)
class SpeakerVoice:
    """A built-in speaker of the model (``inference_sft``)."""

    name: str
    speaker_id: str


@dataclass(frozen=True)
class PromptVoice:
    """A voice cloned from a recording: zero-shot, cross-lingual (no text) or instructed."""

    name: str
    prompt_wav: Path
    prompt_text: str | None = None
    instruct_text: str | None = None

    @property
    def mode(self) -> Literal["zero_shot", "cross_lingual", "instruct2"]:
        if self.instruct_text:
            return "instruct2"
        return "zero_shot" if self.prompt_text else "cross_lingual"


CosyVoiceVoice = SpeakerVoice | PromptVoice


class VoiceBook:
    """The voices a backend offers, by name; unknown or missing names get the default."""

    def __init__(self, voices: Iterable[CosyVoiceVoice], default: str) -> None:
        self._voices = {voice.name: voice for voice in voices}
        if default not in self._voices:
            known = ", ".join(sorted(self._voices)) or "none"
            raise ValueError(
                f"the default CosyVoice voice {default!r} is not defined (known: {known})"
            )
        self.default = self._voices[default]

    @property
    def voices(self) -> list[CosyVoiceVoice]:
        return list(self._voices.values())

    def resolve(self, name: str | None) -> CosyVoiceVoice:
        if name is None:
            return self.default
        return self._voices.get(name, self.default)


def with_end_of_prompt(text: str, version: CosyVoiceVersion) -> str:
    """The prompt (or instruct) text as ``version`` wants it: CosyVoice 3 needs the marker."""
    if version == 2 or END_OF_PROMPT in text:
        return text
    return f"{DEFAULT_SYSTEM_PROMPT}{END_OF_PROMPT}{text}"


def instruct_with_end_of_prompt(text: str, version: CosyVoiceVersion) -> str:
    """Instruct text for ``inference_instruct2``: CosyVoice 3 ends it with the marker."""
    if version == 2 or END_OF_PROMPT in text:
        return text
    return f"{DEFAULT_SYSTEM_PROMPT} {text}{END_OF_PROMPT}"


CosyVoiceMode = Literal["sft", "zero_shot", "cross_lingual", "instruct2"]


@dataclass(frozen=True)
class CosyVoiceRequest:
    """What CosyVoice is asked to speak, whatever carries it: upstream's ``inference_<mode>``
    with its texts as the model wants them, and the prompt recording (not for ``sft``)."""

    mode: CosyVoiceMode
    tts_text: str
    speaker_id: str | None = None
    prompt_wav: Path | None = None
    prompt_text: str | None = None
    instruct_text: str | None = None


def cosyvoice_request(
    voice: CosyVoiceVoice, text: str, version: CosyVoiceVersion
) -> CosyVoiceRequest:
    """The request that speaks ``text`` in ``voice`` to a CosyVoice ``version`` model."""
    if isinstance(voice, SpeakerVoice):
        return CosyVoiceRequest("sft", text, speaker_id=voice.speaker_id)
    if voice.mode == "instruct2":
        instruct = instruct_with_end_of_prompt(voice.instruct_text or "", version)
        return CosyVoiceRequest(
            "instruct2", text, prompt_wav=voice.prompt_wav, instruct_text=instruct
        )
    if voice.mode == "zero_shot":
        prompt = with_end_of_prompt(voice.prompt_text or "", version)
        return CosyVoiceRequest("zero_shot", text, prompt_wav=voice.prompt_wav, prompt_text=prompt)
    # Without a prompt text, CosyVoice 3 takes its system prompt in the text itself.
    return CosyVoiceRequest(
        "cross_lingual", with_end_of_prompt(text, version), prompt_wav=voice.prompt_wav
    )
