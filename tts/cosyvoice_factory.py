"""Build the CosyVoice backend the options name: HTTP server, gRPC server or a model in-process."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tts.base import TextToSpeech
from tts.cosyvoice_voices import (
    CosyVoiceVersion,
    CosyVoiceVoice,
    PromptVoice,
    SpeakerVoice,
    VoiceBook,
)


@dataclass(frozen=True)
class CosyVoiceOptions:
    """Where CosyVoice runs (exactly one of ``url``, ``grpc_target``, ``model_dir``) and its voices.

    ``voice`` is the default voice: the name of a prompt voice, or a built-in speaker id.
    Without it the first prompt voice is the default, else the first speaker.
    ``version`` and ``sample_rate`` describe a remote server's model (the streams do not
    say); in-process they are read from the model.
    """

    url: str | None = None
    grpc_target: str | None = None
    model_dir: Path | None = None
    voice: str | None = None
    prompt_voices: tuple[PromptVoice, ...] = ()
    speakers: tuple[str, ...] = ()
    version: CosyVoiceVersion = 3
    sample_rate: int = 24_000
    fp16: bool = False
    load_trt: bool = False
    lookahead: int = 1

    def problem(self) -> str | None:
        """What is wrong with these options, if anything (for the command line)."""
        places = [self.url, self.grpc_target, self.model_dir]
        if sum(place is not None for place in places) != 1:
            return (
                "--tts cosyvoice needs exactly one of --cosyvoice-url (its FastAPI server), "
                "--cosyvoice-grpc (its gRPC server) or --cosyvoice-model-dir (in-process)"
            )
        if (
            self.voice is None
            and not self.prompt_voices
            and not self.speakers
            and self.model_dir is None
        ):
            return (
                "CosyVoice needs a voice: --cosyvoice-prompt-voice NAME WAV TEXT (CosyVoice 2 "
                "and 3 have no built-in speakers) or --cosyvoice-voice SPEAKER_ID"
            )
        return None


def voice_book(options: CosyVoiceOptions, model_speakers: tuple[str, ...] = ()) -> VoiceBook:
    """The voices the options define; a default that names nothing known is a speaker id."""
    voices: list[CosyVoiceVoice] = list(options.prompt_voices)
    names = {voice.name for voice in voices}
    for speaker in (*options.speakers, *model_speakers):
        if speaker not in names:
            voices.append(SpeakerVoice(speaker, speaker))
            names.add(speaker)
    default = options.voice
    if default is not None and default not in names:
        voices.append(SpeakerVoice(default, default))
    if default is None:
        if not voices:
            raise ValueError("CosyVoice has no voice: configure a prompt voice or a speaker")
        default = voices[0].name
    return VoiceBook(voices, default)


def build_cosyvoice_tts(options: CosyVoiceOptions) -> TextToSpeech:
    """The backend; loading a model in-process blocks for as long as the model takes to load."""
    problem = options.problem()
    if problem is not None:
        raise ValueError(problem)
    if options.url is not None:
        from tts.cosyvoice_remote import CosyVoiceHttpTts

        return CosyVoiceHttpTts(
            options.url,
            voice_book(options),
            sample_rate=options.sample_rate,
            version=options.version,
            lookahead=options.lookahead,
        )
    if options.grpc_target is not None:
        try:
            from tts.cosyvoice_grpc import CosyVoiceGrpcTts
        except ImportError as error:
            raise ValueError(
                "--cosyvoice-grpc needs grpcio: pip install 'step-realtime[cosyvoice-grpc]' "
                f"({error})"
            ) from error
        return CosyVoiceGrpcTts(
            options.grpc_target,
            voice_book(options),
            sample_rate=options.sample_rate,
            version=options.version,
            lookahead=options.lookahead,
        )
    from tts.cosyvoice_inprocess import CosyVoiceInProcessTts, load_cosyvoice_model, model_version

    assert options.model_dir is not None
    model = load_cosyvoice_model(options.model_dir, fp16=options.fp16, load_trt=options.load_trt)
    speakers = tuple(model.list_available_spks()) if model_version(model) == 2 else ()
    backend = CosyVoiceInProcessTts(
        model, voice_book(options, speakers), lookahead=options.lookahead
    )
    backend.prepare()
    return backend
