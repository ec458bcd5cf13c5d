"""When CosyVoice fails mid-reply the client gets an error, the reply's text, and a working session.

The real service (echo engine, ``--tts cosyvoice --cosyvoice-url``) in a subprocess, its TTS
a stand-in for CosyVoice's FastAPI server that cuts its first stream off mid-way.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from benchmarks.harness.service import ServiceProcess
from realtime.client import RealtimeClient, ResponseResult, collect_response
from tests.tts.cosyvoice_http_fake import FakeBehaviour, FakeCosyVoiceHttpServer
from tests.tts.speech_code import SAMPLES_PER_CHAR, decode_text

TURN_TIMEOUT_S = 30.0
CUT_AFTER_MS = 300
LONG_MESSAGE = (
    "hello world, this is a longer message that goes on for a while. It has a second "
    "sentence which is long enough to be a segment of its own. And a third one ends it."
)


@pytest.fixture(scope="module")
async def cosyvoice_server() -> AsyncIterator[FakeCosyVoiceHttpServer]:
    cut_bytes = 24_000 * CUT_AFTER_MS // 1000 * 2
    behaviour = FakeBehaviour(fail_request={0}, fail_after_bytes=cut_bytes, piece_delay_s=0.01)
    async with FakeCosyVoiceHttpServer(behaviour) as server:
        yield server


@pytest.fixture(scope="module")
def cosyvoice_service(
    cosyvoice_server: FakeCosyVoiceHttpServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("cosyvoice-service") / "serve.log"
    arguments = ["--tts", "cosyvoice", "--cosyvoice-url", cosyvoice_server.url]
    arguments += ["--cosyvoice-voice", "英文女", "--cosyvoice-version", "2"]
    with ServiceProcess(*arguments, log_path=log) as service:
        yield service


async def say_in_text(client: RealtimeClient, text: str) -> ResponseResult:
    await client.send(
        {
            "type": "conversation.item.create",
            "item": {
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    )
    await client.wait_for("conversation.item.done", timeout=10)
    await client.create_response()
    return await collect_response(client, timeout=TURN_TIMEOUT_S, raise_on_error=False)


def transcript_deltas(response: ResponseResult) -> str:
    return "".join(
        event.raw["delta"]
        for event in response.events
        if event.type == "response.output_audio_transcript.delta"
    )


async def test_a_tts_failure_mid_reply_sends_an_error_and_the_rest_of_the_text(
    cosyvoice_service: ServiceProcess, cosyvoice_server: FakeCosyVoiceHttpServer
) -> None:
    async with RealtimeClient.connect(cosyvoice_service.ws_url) as client:
        failed = await say_in_text(client, LONG_MESSAGE)
        recovered = await say_in_text(client, "how are you today")

    assert failed.status == "completed"
    assert [error.error.code for error in failed.errors] == ["tts_error"]
    message = failed.errors[0].error.message
    assert cosyvoice_server.url in message and "cut the audio of segment 0 off" in message
    # Segments never spoken still reach the client as transcript.
    reply = f"You said: {LONG_MESSAGE}"
    assert transcript_deltas(failed) == failed.transcript == reply
    first_segment = cosyvoice_server.requests[0].fields["tts_text"]
    assert reply.startswith(first_segment) and len(first_segment) < len(reply) / 2
    # The audio that arrived before the cut was played; nothing after it.
    assert 0 < failed.audio_ms <= CUT_AFTER_MS + 20

    assert recovered.status == "completed" and recovered.errors == []
    assert recovered.transcript == "You said: how are you today"
    spoken = recovered.transcript
    assert decode_text(recovered.audio[: len(spoken) * SAMPLES_PER_CHAR]) == spoken
    assert abs(recovered.audio_ms - len(spoken) * 20) <= 20


def test_serve_refuses_cosyvoice_without_a_server_or_model(tmp_path: Path) -> None:
    service = ServiceProcess(
        "--tts", "cosyvoice", "--cosyvoice-voice", "x", log_path=tmp_path / "log"
    )
    with pytest.raises(RuntimeError, match="needs exactly one of --cosyvoice-url"):
        service.start(timeout_s=30)
