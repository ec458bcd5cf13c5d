"""Specification of the CosyVoice gRPC backend against a server built from the same proto."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import numpy as np
import pytest

from tests.tts.cosyvoice_grpc_fake import FakeCosyVoiceGrpcServer, GrpcBehaviour
from tests.tts.speech_code import SAMPLES_PER_CHAR, decode_text
from tests.tts.waiting import wait_until
from tokenizer.pcm import wav_bytes
from tts.base import SpeechChunk, TtsError
from tts.cosyvoice_grpc import CosyVoiceGrpcTts
from tts.cosyvoice_voices import END_OF_PROMPT, PromptVoice, SpeakerVoice, VoiceBook

TIMEOUT_S = 20.0
REPO = Path(__file__).resolve().parents[2]
REPLY = (
    "Sure, here is what I found about the weather today. It will be sunny in the morning "
    "and the afternoon. Later in the evening some clouds may come in from the west."
)
SPEAKERS = VoiceBook([SpeakerVoice("en", "英文女")], default="en")


async def deltas(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "
        await asyncio.sleep(0)


async def collect(tts: CosyVoiceGrpcTts, text: str) -> list[SpeechChunk]:
    async with contextlib.aclosing(tts.speak(deltas(text))) as chunks:
        return [chunk async for chunk in chunks]


@pytest.fixture
def server() -> Iterator[FakeCosyVoiceGrpcServer]:
    with FakeCosyVoiceGrpcServer() as fake:
        yield fake


@pytest.fixture
def prompt_wav(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.wav"
    path.write_bytes(wav_bytes((np.sin(np.arange(24_000) / 10) * 8000).astype(np.int16), 24_000))
    return path


async def test_each_segment_is_one_sft_call_and_its_audio_comes_back_in_order(
    server: FakeCosyVoiceGrpcServer,
) -> None:
    tts = CosyVoiceGrpcTts(server.target, SPEAKERS)
    try:
        chunks = await asyncio.wait_for(collect(tts, REPLY), TIMEOUT_S)
    finally:
        await tts.aclose()
    texts: dict[int, str] = {}
    audio: dict[int, list[np.ndarray]] = {}
    for chunk in chunks:
        texts[chunk.segment_index] = chunk.segment_text
        audio.setdefault(chunk.segment_index, []).append(chunk.pcm)
    assert len(texts) >= 2 and list(texts) == list(range(len(texts)))
    for index, text in texts.items():
        assert decode_text(np.concatenate(audio[index])) == text
    assert [request.sft_request.tts_text for request in server.requests] == list(texts.values())
    assert {request.sft_request.spk_id for request in server.requests} == {"英文女"}
    assert all(len(chunk.pcm) == 960 for chunk in chunks if not chunk.segment_end)


async def test_a_zero_shot_voice_sends_its_prompt_as_16_khz_pcm_with_the_cosyvoice3_marker(
    server: FakeCosyVoiceGrpcServer, prompt_wav: Path
) -> None:
    voices = VoiceBook([PromptVoice("clone", prompt_wav, "A sentence in the prompt.")], "clone")
    tts = CosyVoiceGrpcTts(server.target, voices, version=3)
    try:
        await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()
    request = server.requests[0].zero_shot_request
    assert request.tts_text == "Hello there, this is a test."
    assert END_OF_PROMPT in request.prompt_text
    assert request.prompt_text.endswith("A sentence in the prompt.")
    assert abs(len(server.prompt_audio[0]) - 16_000) <= 2  # 1 s at 24 kHz became 1 s at 16 kHz
    assert np.abs(server.prompt_audio[0].astype(np.int32)).max() > 4000


async def test_a_voice_without_prompt_text_is_cross_lingual(
    server: FakeCosyVoiceGrpcServer, prompt_wav: Path
) -> None:
    tts = CosyVoiceGrpcTts(server.target, VoiceBook([PromptVoice("x", prompt_wav)], "x"), version=2)
    try:
        await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()
    assert server.requests[0].WhichOneof("RequestPayload") == "cross_lingual_request"
    assert server.requests[0].cross_lingual_request.tts_text == "Hello there, this is a test."


def test_instructed_voices_are_refused_because_the_proto_has_no_instruct2(prompt_wav: Path) -> None:
    voices = VoiceBook([PromptVoice("x", prompt_wav, "Hi.", instruct_text="Whisper.")], "x")
    with pytest.raises(ValueError, match="no instruct2"):
        CosyVoiceGrpcTts("127.0.0.1:9", voices)


async def test_the_next_segment_is_synthesizing_while_the_current_one_streams(
    server: FakeCosyVoiceGrpcServer,
) -> None:
    server.behaviour.piece_bytes = 1920
    server.behaviour.piece_delay_s = 0.01
    tts = CosyVoiceGrpcTts(server.target, SPEAKERS)
    try:
        await asyncio.wait_for(collect(tts, REPLY), TIMEOUT_S)
    finally:
        await tts.aclose()
    events = server.stream_events
    assert events.index(("start", 1)) < events.index(("end", 0))


async def test_closing_the_speech_cancels_the_call_in_flight(
    server: FakeCosyVoiceGrpcServer,
) -> None:
    server.behaviour.endless = True
    tts = CosyVoiceGrpcTts(server.target, SPEAKERS)
    try:
        speech = tts.speak(deltas("Hello there, this reply never ends on the server."))
        received = 0
        async for chunk in speech:
            received += len(chunk.pcm)
            if received > 10 * SAMPLES_PER_CHAR:
                break
        await speech.aclose()
        await wait_until(lambda: 0 in server.cancelled, TIMEOUT_S)
    finally:
        await tts.aclose()


async def test_an_unreachable_server_is_a_tts_error_naming_it() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tts = CosyVoiceGrpcTts(f"127.0.0.1:{port}", SPEAKERS)
    try:
        with pytest.raises(
            TtsError, match=f"cannot reach the CosyVoice gRPC server at 127.0.0.1:{port}"
        ):
            await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()


async def test_a_model_error_mid_stream_yields_the_audio_before_it_then_fails() -> None:
    behaviour = GrpcBehaviour(fail_request={0}, fail_after_bytes=960 * 2 * 2)
    received: list[SpeechChunk] = []
    with FakeCosyVoiceGrpcServer(behaviour) as server:
        tts = CosyVoiceGrpcTts(server.target, SPEAKERS)
        try:
            with pytest.raises(
                TtsError, match=r"failed on segment 0 after 80 ms of audio: UNKNOWN: .*CUDA error"
            ):
                async with asyncio.timeout(TIMEOUT_S):
                    async for chunk in tts.speak(deltas("Hello there, this is a test.")):
                        received.append(chunk)
        finally:
            await tts.aclose()
    assert sum(len(chunk.pcm) for chunk in received) == 960 * 2


async def test_an_unknown_speaker_is_the_servers_error(server: FakeCosyVoiceGrpcServer) -> None:
    tts = CosyVoiceGrpcTts(server.target, VoiceBook([SpeakerVoice("x", "nobody")], "x"))
    try:
        with pytest.raises(TtsError, match=r"UNKNOWN: .*nobody"):
            await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()


def test_the_committed_python_modules_are_generated_from_the_proto(tmp_path: Path) -> None:
    from grpc_tools import protoc

    proto = "tts/cosyvoice_proto/cosyvoice.proto"
    arguments = ["protoc", f"-I{REPO}", f"--python_out={tmp_path}", f"--pyi_out={tmp_path}"]
    arguments += [f"--grpc_python_out={tmp_path}", str(REPO / proto)]
    assert protoc.main(arguments) == 0
    for name in ("cosyvoice_pb2.py", "cosyvoice_pb2.pyi", "cosyvoice_pb2_grpc.py"):
        generated = (tmp_path / "tts" / "cosyvoice_proto" / name).read_text()
        committed = (REPO / "tts" / "cosyvoice_proto" / name).read_text()
        assert generated == committed, f"{name} is out of date: regenerate it (see the proto)"
