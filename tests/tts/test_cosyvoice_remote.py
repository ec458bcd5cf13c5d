"""Specification of the CosyVoice HTTP backend against a server speaking the FastAPI contract."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tests.tts.cosyvoice_http_fake import FakeBehaviour, FakeCosyVoiceHttpServer
from tests.tts.speech_code import SAMPLES_PER_CHAR, decode_text
from tests.tts.waiting import wait_until
from tokenizer.pcm import wav_bytes
from tts.base import SpeechChunk, TtsError
from tts.cosyvoice_remote import CosyVoiceHttpTts
from tts.cosyvoice_segmenting import COSYVOICE_RULES
from tts.cosyvoice_voices import END_OF_PROMPT, PromptVoice, SpeakerVoice, VoiceBook

TIMEOUT_S = 20.0
PROMPT_BYTES = wav_bytes(np.arange(16_000, dtype=np.int16), 16_000)
REPLY = (
    "Sure, here is what I found about the weather today. It will be sunny in the morning "
    "and the afternoon. Later in the evening some clouds may come in from the west."
)
SPEAKERS = VoiceBook([SpeakerVoice("en", "英文女"), SpeakerVoice("zh", "中文女")], default="en")


async def deltas(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "
        await asyncio.sleep(0)


async def collect(tts: CosyVoiceHttpTts, text: str, voice: str | None = None) -> list[SpeechChunk]:
    async with contextlib.aclosing(tts.speak(deltas(text), voice=voice)) as chunks:
        return [chunk async for chunk in chunks]


def by_segment(chunks: list[SpeechChunk]) -> dict[int, tuple[str, np.ndarray]]:
    segments: dict[int, tuple[str, list[np.ndarray]]] = {}
    for chunk in chunks:
        segments.setdefault(chunk.segment_index, (chunk.segment_text, []))[1].append(chunk.pcm)
    return {index: (text, np.concatenate(parts)) for index, (text, parts) in segments.items()}


@pytest.fixture
async def server() -> AsyncIterator[FakeCosyVoiceHttpServer]:
    async with FakeCosyVoiceHttpServer() as fake:
        yield fake


@pytest.fixture
def prompt_wav(tmp_path: Path) -> Path:
    path = tmp_path / "prompt.wav"
    path.write_bytes(PROMPT_BYTES)
    return path


async def test_each_segment_is_one_sft_request_and_its_audio_comes_back_in_order(
    server: FakeCosyVoiceHttpServer,
) -> None:
    tts = CosyVoiceHttpTts(server.url, SPEAKERS)
    try:
        chunks = await asyncio.wait_for(collect(tts, REPLY), TIMEOUT_S)
    finally:
        await tts.aclose()
    segments = by_segment(chunks)
    assert len(segments) >= 2
    assert [index for index in segments] == list(range(len(segments)))
    for text, pcm in segments.values():
        assert decode_text(pcm) == text  # each segment's audio speaks exactly its text
    assert " ".join(text for text, _ in segments.values()) == " ".join(REPLY.split())
    assert [chunk.segment_end for chunk in chunks].count(True) == len(segments)
    assert [request.route for request in server.requests] == ["/inference_sft"] * len(segments)
    first = server.requests[0]
    assert first.method == "POST"
    assert first.fields == {"tts_text": segments[0][0], "spk_id": "英文女"}
    assert COSYVOICE_RULES.first_min_chars <= len(segments[0][0]) <= COSYVOICE_RULES.first_max_chars


async def test_audio_comes_in_40_ms_chunks_even_when_reads_split_samples(
    server: FakeCosyVoiceHttpServer,
) -> None:
    server.behaviour.piece_bytes = 1001  # odd: samples straddle network writes
    tts = CosyVoiceHttpTts(server.url, SPEAKERS, chunk_ms=40)
    try:
        chunks = await asyncio.wait_for(
            collect(tts, "Hello there, this is one short reply."), TIMEOUT_S
        )
    finally:
        await tts.aclose()
    assert all(len(chunk.pcm) == 960 for chunk in chunks if not chunk.segment_end)
    assert chunks[-1].segment_end and len(chunks[-1].pcm) < 960
    audio = np.concatenate([chunk.pcm for chunk in chunks])
    assert decode_text(audio) == "Hello there, this is one short reply."


async def test_the_session_voice_picks_a_known_speaker_and_unknown_names_get_the_default(
    server: FakeCosyVoiceHttpServer,
) -> None:
    tts = CosyVoiceHttpTts(server.url, SPEAKERS)
    try:
        await asyncio.wait_for(collect(tts, "Hello there, this is a test.", voice="zh"), TIMEOUT_S)
        await asyncio.wait_for(
            collect(tts, "Hello there, this is a test.", voice="alloy"), TIMEOUT_S
        )
    finally:
        await tts.aclose()
    assert [request.fields["spk_id"] for request in server.requests] == ["中文女", "英文女"]


@pytest.mark.parametrize(
    ("voice_kwargs", "route", "version"),
    [
        (
            {"prompt_text": "The quick brown fox jumps over the lazy dog."},
            "/inference_zero_shot",
            3,
        ),
        (
            {"prompt_text": "The quick brown fox jumps over the lazy dog."},
            "/inference_zero_shot",
            2,
        ),
        ({}, "/inference_cross_lingual", 3),
        ({"instruct_text": "Speak cheerfully."}, "/inference_instruct2", 3),
    ],
)
async def test_prompt_voices_upload_the_prompt_wav_to_their_route(
    server: FakeCosyVoiceHttpServer,
    prompt_wav: Path,
    voice_kwargs: dict[str, str],
    route: str,
    version: int,
) -> None:
    voice = PromptVoice("clone", prompt_wav, **voice_kwargs)
    tts = CosyVoiceHttpTts(server.url, VoiceBook([voice], "clone"), version=version)  # type: ignore[arg-type]
    try:
        chunks = await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()
    request = server.requests[0]
    assert request.route == route
    assert request.files == {"prompt_wav": PROMPT_BYTES}
    if route == "/inference_zero_shot":
        prompt = request.fields["prompt_text"]
        assert prompt.endswith(voice_kwargs["prompt_text"])
        assert (END_OF_PROMPT in prompt) == (version == 3)
        assert request.fields["tts_text"] == "Hello there, this is a test."
    if route == "/inference_cross_lingual":
        assert request.fields["tts_text"].endswith(END_OF_PROMPT + "Hello there, this is a test.")
    if route == "/inference_instruct2":
        assert request.fields["instruct_text"].endswith("Speak cheerfully." + END_OF_PROMPT)
    assert chunks[-1].segment_end


async def test_the_next_segment_is_synthesizing_while_the_current_one_streams(
    server: FakeCosyVoiceHttpServer,
) -> None:
    server.behaviour.piece_bytes = 960 * 2
    server.behaviour.piece_delay_s = 0.01
    tts = CosyVoiceHttpTts(server.url, SPEAKERS, lookahead=1)
    try:
        chunks = await asyncio.wait_for(collect(tts, REPLY), TIMEOUT_S)
    finally:
        await tts.aclose()
    assert len({chunk.segment_index for chunk in chunks}) >= 2
    events = server.stream_events
    assert events.index(("start", 1)) < events.index(("end", 0))


async def test_closing_the_speech_closes_the_request_in_flight(
    server: FakeCosyVoiceHttpServer,
) -> None:
    server.behaviour.endless = True
    tts = CosyVoiceHttpTts(server.url, SPEAKERS)
    try:
        speech = tts.speak(deltas("Hello there, this reply never ends on the server."))
        received = 0
        async for chunk in speech:
            received += len(chunk.pcm)
            if received > 10 * SAMPLES_PER_CHAR:
                break
        await speech.aclose()
        await wait_until(lambda: 0 in server.abandoned_streams, TIMEOUT_S)
    finally:
        await tts.aclose()
    assert server.finished_streams == []


async def test_a_refused_connection_is_a_tts_error_naming_the_server() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tts = CosyVoiceHttpTts(f"http://127.0.0.1:{port}", SPEAKERS)
    try:
        with pytest.raises(
            TtsError, match=rf"cannot connect to the CosyVoice server at http://127.0.0.1:{port}"
        ):
            await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (500, "HTTP 500 .*Internal Server Error"),
        (422, r"HTTP 422 .*body\.prompt_text: Field required"),
    ],
)
async def test_http_errors_carry_the_status_and_the_servers_message(
    server: FakeCosyVoiceHttpServer, status: int, message: str
) -> None:
    server.behaviour.status_for_request = {0: status}
    tts = CosyVoiceHttpTts(server.url, SPEAKERS)
    try:
        with pytest.raises(TtsError, match=message):
            await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()


async def test_an_unknown_speaker_fails_inside_the_stream_and_is_reported_as_cut_off(
    server: FakeCosyVoiceHttpServer,
) -> None:
    tts = CosyVoiceHttpTts(server.url, VoiceBook([SpeakerVoice("x", "nobody")], "x"))
    try:
        with pytest.raises(TtsError, match="cut the audio of segment 0 off after 0 ms"):
            await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)
    finally:
        await tts.aclose()


async def test_a_stream_cut_mid_way_yields_the_audio_before_it_then_fails(
    server: FakeCosyVoiceHttpServer,
) -> None:
    server.behaviour = FakeBehaviour(fail_request={0}, fail_after_bytes=960 * 2 * 3)
    tts = CosyVoiceHttpTts(server.url, SPEAKERS)
    received: list[SpeechChunk] = []
    try:
        with pytest.raises(TtsError, match="cut the audio of segment 0 off after 120 ms"):
            async with asyncio.timeout(TIMEOUT_S):
                async for chunk in tts.speak(deltas("Hello there, this is a test.")):
                    received.append(chunk)
    finally:
        await tts.aclose()
    assert sum(len(chunk.pcm) for chunk in received) == 960 * 3


async def test_a_closed_backend_refuses_to_speak(server: FakeCosyVoiceHttpServer) -> None:
    tts = CosyVoiceHttpTts(server.url, SPEAKERS)
    await tts.aclose()
    with pytest.raises(TtsError, match="closed"):
        await asyncio.wait_for(collect(tts, "Hello there, this is a test."), TIMEOUT_S)


def test_a_missing_prompt_file_is_a_configuration_error(tmp_path: Path) -> None:
    voices = VoiceBook([PromptVoice("clone", tmp_path / "missing.wav", "Hello.")], "clone")
    with pytest.raises(ValueError, match="cannot read the prompt of voice 'clone'"):
        CosyVoiceHttpTts("http://127.0.0.1:9", voices)
