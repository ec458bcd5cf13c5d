"""Specification of how the command line chooses and configures a CosyVoice backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from realtime.cli import build_parser
from tts.cosyvoice_cli import cosyvoice_options_from
from tts.cosyvoice_factory import CosyVoiceOptions, build_cosyvoice_tts, voice_book
from tts.cosyvoice_grpc import CosyVoiceGrpcTts
from tts.cosyvoice_remote import CosyVoiceHttpTts
from tts.cosyvoice_voices import PromptVoice, SpeakerVoice
from tts.factory import TtsOptions, build_tts


def options_from(*arguments: str) -> CosyVoiceOptions:
    return cosyvoice_options_from(
        build_parser().parse_args(["serve", "--tts", "cosyvoice", *arguments])
    )


def test_the_command_line_defines_prompt_voices_speakers_and_the_server(tmp_path: Path) -> None:
    wav = tmp_path / "a.wav"
    options = options_from(
        "--cosyvoice-url", "http://cosyvoice:50000",
        "--cosyvoice-prompt-voice", "anna", str(wav), "Words in the recording.",
        "--cosyvoice-prompt-voice", "timbre", str(wav), "",
        "--cosyvoice-speaker", "英文女",
        "--cosyvoice-version", "2",
    )  # fmt: skip
    assert options.url == "http://cosyvoice:50000" and options.problem() is None
    assert options.prompt_voices == (
        PromptVoice("anna", wav, "Words in the recording."),
        PromptVoice("timbre", wav, None),
    )
    assert options.speakers == ("英文女",) and options.version == 2
    book = voice_book(options)
    assert book.default.name == "anna"
    assert book.resolve("英文女") == SpeakerVoice("英文女", "英文女")
    assert book.resolve("timbre").name == "timbre"
    assert book.resolve("alloy").name == "anna"


def test_a_default_voice_that_names_nothing_defined_is_a_speaker_id() -> None:
    book = voice_book(CosyVoiceOptions(url="http://x", voice="中文女"))
    assert book.default == SpeakerVoice("中文女", "中文女")


@pytest.mark.parametrize(
    ("options", "problem"),
    [
        (CosyVoiceOptions(voice="x"), "exactly one of --cosyvoice-url"),
        (CosyVoiceOptions(url="http://x", grpc_target="x:1", voice="x"), "exactly one of"),
        (CosyVoiceOptions(url="http://x"), "needs a voice"),
    ],
)
def test_incomplete_options_say_what_is_missing(options: CosyVoiceOptions, problem: str) -> None:
    assert problem in (options.problem() or "")
    with pytest.raises(ValueError, match=problem):
        build_cosyvoice_tts(options)


async def test_tts_cosyvoice_builds_the_http_or_the_grpc_backend() -> None:
    http = build_tts(
        TtsOptions(
            name="cosyvoice",
            cosyvoice=options_from("--cosyvoice-url", "http://h:1", "--cosyvoice-voice", "s"),
        )
    )
    grpc = build_tts(
        TtsOptions(
            name="cosyvoice",
            cosyvoice=options_from("--cosyvoice-grpc", "h:1", "--cosyvoice-voice", "s"),
        )
    )
    try:
        assert isinstance(http, CosyVoiceHttpTts) and http.sample_rate == 24_000
        assert isinstance(grpc, CosyVoiceGrpcTts) and grpc.target == "h:1"
    finally:
        await http.aclose()
        await grpc.aclose()


def test_in_process_refuses_a_directory_without_a_model(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no CosyVoice 2 or 3 model"):
        build_cosyvoice_tts(CosyVoiceOptions(model_dir=tmp_path))


def test_in_process_explains_how_to_get_the_official_repository(tmp_path: Path) -> None:
    (tmp_path / "cosyvoice3.yaml").write_text("")
    with pytest.raises(ValueError, match=r"official repository .* not the PyPI package"):
        build_cosyvoice_tts(CosyVoiceOptions(model_dir=tmp_path))
