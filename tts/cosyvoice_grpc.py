"""CosyVoice as a separate gRPC service (its bundled gRPC server): one streaming call per segment.

Contract matched: FunAudioLLM/CosyVoice at ace7c47f41bb (2026-03-16),
``runtime/python/grpc/cosyvoice.proto``, ``server.py`` and ``client.py``. Our copy of the
proto is ``tts/cosyvoice_proto/cosyvoice.proto`` (same package, names and field numbers),
with its Python modules generated and committed beside it (see the proto for the command;
a test keeps them in step), so the service needs only ``grpcio`` and ``protobuf`` at run
time (extra ``cosyvoice-grpc``).

- ``cosyvoice.CosyVoice/Inference``: a ``Request`` with one of ``sft_request`` (``spk_id``,
  ``tts_text``), ``zero_shot_request`` (``tts_text``, ``prompt_text``, ``prompt_audio``),
  ``cross_lingual_request`` (``tts_text``, ``prompt_audio``) or ``instruct_request``
  (CosyVoice 1 only, not used); a stream of ``Response`` whose ``tts_audio`` is raw int16
  PCM at the model's rate (24000 Hz for CosyVoice 2/3; not in the stream, so configured).
- ``prompt_audio`` is raw int16 PCM at 16 kHz: the server wraps it as
  ``prompt_speech_16k``. Prompt WAVs are read and resampled once, here.
- The server synthesizes without ``stream=True`` (one response per text paragraph); it has
  no speed or instruct2 fields. A model error ends the call with status ``UNKNOWN``
  ("Exception iterating responses: ..."); an unreachable server is ``UNAVAILABLE``.

Segments (``COSYVOICE_RULES``) are synthesized ahead with ``speak_segments``; closing the
generator cancels the calls in flight. Audio is yielded in ``chunk_ms`` chunks.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, AsyncIterable
from pathlib import Path

import grpc

from tokenizer.framing import frame_samples_for
from tokenizer.pcm import AudioFormatError, read_wav
from tokenizer.resample import resample
from tts.base import SpeechChunk, TtsError
from tts.cosyvoice_proto import cosyvoice_pb2, cosyvoice_pb2_grpc
from tts.cosyvoice_segmenting import COSYVOICE_RULES
from tts.cosyvoice_voices import (
    CosyVoiceVersion,
    CosyVoiceVoice,
    PromptVoice,
    VoiceBook,
    cosyvoice_request,
)
from tts.pipeline import speak_segments
from tts.segment_framing import SegmentFramer
from tts.segmenter import SegmenterRules

PROMPT_RATE = 16_000


class CosyVoiceGrpcTts:
    """Speech from a CosyVoice gRPC server at ``target`` (``host:port``)."""

    name = "cosyvoice-grpc"

    def __init__(
        self,
        target: str,
        voices: VoiceBook,
        *,
        sample_rate: int = 24_000,
        version: CosyVoiceVersion = 3,
        rules: SegmenterRules = COSYVOICE_RULES,
        lookahead: int = 1,
        chunk_ms: int = 40,
        call_timeout_s: float = 120.0,
    ) -> None:
        if lookahead < 0:
            raise ValueError("lookahead must be >= 0")
        self.target = target
        self.voices = voices
        self.sample_rate = sample_rate
        self.version = version
        self.rules = rules
        self.lookahead = lookahead
        self.call_timeout_s = call_timeout_s
        self._chunk_samples = frame_samples_for(chunk_ms, sample_rate)
        self._prompt_audio = _prompt_audio(voices)
        self._channel: grpc.aio.Channel | None = None
        self._closed = False

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        """Speak streamed text; ``speed`` is ignored (the proto has no such field)."""
        synthesize = functools.partial(self._synthesize, voice=self.voices.resolve(voice))
        return speak_segments(text, self.rules, synthesize, lookahead=self.lookahead)

    async def aclose(self) -> None:
        self._closed = True
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def request_for(self, voice: CosyVoiceVoice, text: str) -> cosyvoice_pb2.Request:
        """The request that speaks ``text`` in ``voice``."""
        request = cosyvoice_request(voice, text, self.version)
        if request.mode == "sft":
            return cosyvoice_pb2.Request(
                sft_request=cosyvoice_pb2.sftRequest(
                    spk_id=request.speaker_id, tts_text=request.tts_text
                )
            )
        if request.prompt_wav is None or request.mode == "instruct2":
            raise ValueError(f"the CosyVoice gRPC server has no {request.mode} request")
        audio = self._prompt_audio[request.prompt_wav]
        if request.mode == "zero_shot":
            return cosyvoice_pb2.Request(
                zero_shot_request=cosyvoice_pb2.zeroshotRequest(
                    tts_text=request.tts_text, prompt_text=request.prompt_text, prompt_audio=audio
                )
            )
        return cosyvoice_pb2.Request(
            cross_lingual_request=cosyvoice_pb2.crosslingualRequest(
                tts_text=request.tts_text, prompt_audio=audio
            )
        )

    def _stub(self) -> cosyvoice_pb2_grpc.CosyVoiceStub:
        if self._closed:
            raise TtsError("the CosyVoice gRPC backend is closed")
        if self._channel is None:
            # Created on first use, inside the event loop that the calls run on.
            self._channel = grpc.aio.insecure_channel(self.target)
        return cosyvoice_pb2_grpc.CosyVoiceStub(self._channel)

    async def _synthesize(
        self, index: int, text: str, *, voice: CosyVoiceVoice
    ) -> AsyncGenerator[SpeechChunk, None]:
        call = self._stub().Inference(self.request_for(voice, text), timeout=self.call_timeout_s)
        framer = SegmentFramer(index, text, self._chunk_samples)
        try:
            async for response in call:
                for chunk in framer.push_bytes(response.tts_audio):
                    yield chunk
        except grpc.aio.AioRpcError as error:
            raise self._error(error, index, framer) from error
        finally:
            if not call.done():
                call.cancel()
        yield framer.finish()

    def _error(self, error: grpc.aio.AioRpcError, index: int, framer: SegmentFramer) -> TtsError:
        code, details = error.code(), error.details() or "no details"
        if code == grpc.StatusCode.UNAVAILABLE:
            return TtsError(f"cannot reach the CosyVoice gRPC server at {self.target}: {details}")
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            return TtsError(
                f"the CosyVoice gRPC server at {self.target} took over {self.call_timeout_s} s "
                f"for segment {index}"
            )
        heard_ms = 1000 * framer.samples // self.sample_rate
        return TtsError(
            f"the CosyVoice gRPC server at {self.target} failed on segment {index} after "
            f"{heard_ms} ms of audio: {code.name}: {details}"
        )


def _prompt_audio(voices: VoiceBook) -> dict[Path, bytes]:
    """Each prompt WAV as the server wants it: raw int16 PCM at 16 kHz."""
    audio: dict[Path, bytes] = {}
    for voice in voices.voices:
        if not isinstance(voice, PromptVoice):
            continue
        if voice.mode == "instruct2":
            raise ValueError(
                f"voice {voice.name!r}: the CosyVoice gRPC server has no instruct2 request; "
                "use the HTTP server (--cosyvoice-url) for instructed voices"
            )
        if voice.prompt_wav in audio:
            continue
        try:
            pcm, rate = read_wav(voice.prompt_wav)
        except (OSError, AudioFormatError) as error:
            raise ValueError(f"cannot read the prompt of voice {voice.name!r}: {error}") from error
        if rate < PROMPT_RATE:
            raise ValueError(
                f"the prompt of voice {voice.name!r} is {rate} Hz; CosyVoice needs 16 kHz or more"
            )
        audio[voice.prompt_wav] = resample(pcm, rate, PROMPT_RATE).astype("<i2").tobytes()
    return audio
