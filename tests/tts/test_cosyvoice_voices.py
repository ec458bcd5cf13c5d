"""A voice and a text become one CosyVoice request, the same for every backend that carries it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tts.cosyvoice_voices import (
    END_OF_PROMPT,
    CosyVoiceRequest,
    CosyVoiceVersion,
    PromptVoice,
    SpeakerVoice,
    cosyvoice_request,
)

WAV = Path("/voices/alice.wav")


def test_a_builtin_speaker_is_an_sft_request_with_no_prompt() -> None:
    request = cosyvoice_request(SpeakerVoice("en", "英文女"), "Hello.", 3)

    assert request == CosyVoiceRequest("sft", "Hello.", speaker_id="英文女")


@pytest.mark.parametrize("version", [2, 3])
def test_a_zero_shot_voice_carries_its_prompt_text_marked_for_cosyvoice_3(
    version: CosyVoiceVersion,
) -> None:
    voice = PromptVoice("alice", WAV, prompt_text="This is Alice.")

    request = cosyvoice_request(voice, "Hello.", version)

    assert (request.mode, request.tts_text, request.prompt_wav) == ("zero_shot", "Hello.", WAV)
    assert request.speaker_id is None and request.instruct_text is None
    assert request.prompt_text is not None and request.prompt_text.endswith("This is Alice.")
    assert (END_OF_PROMPT in request.prompt_text) == (version == 3)


@pytest.mark.parametrize("version", [2, 3])
def test_a_cross_lingual_voice_puts_cosyvoice_3s_system_prompt_in_the_text(
    version: CosyVoiceVersion,
) -> None:
    request = cosyvoice_request(PromptVoice("timbre", WAV), "Bonjour.", version)

    assert (request.mode, request.prompt_wav, request.prompt_text) == ("cross_lingual", WAV, None)
    assert request.tts_text.endswith("Bonjour.")
    assert (END_OF_PROMPT in request.tts_text) == (version == 3)


def test_an_instructed_voice_ends_its_instruction_with_the_marker_on_cosyvoice_3() -> None:
    voice = PromptVoice("calm", WAV, prompt_text="Hi.", instruct_text="Speak calmly.")

    v2 = cosyvoice_request(voice, "Hello.", 2)
    v3 = cosyvoice_request(voice, "Hello.", 3)

    assert (v2.mode, v2.tts_text, v2.instruct_text, v2.prompt_text) == (
        "instruct2",
        "Hello.",
        "Speak calmly.",
        None,
    )
    assert v3.instruct_text is not None and v3.instruct_text.endswith(
        f"Speak calmly.{END_OF_PROMPT}"
    )
