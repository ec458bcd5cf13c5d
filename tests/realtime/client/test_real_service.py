"""The SDK against the real service (echo engine, silero VAD, espeak-ng) on 127.0.0.1."""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest
import uvicorn

from realtime.call import run_call
from realtime.client.events import EVENT_MODELS, OutputAudioDelta, ServerEvent
from realtime.server.app import create_app
from realtime.server.resources import ServiceOptions
from tokenizer.pcm import read_wav

pytestmark = pytest.mark.slow  # starts the real service

STARTUP_S = 60.0


@pytest.fixture
async def service_url() -> AsyncIterator[str]:
    """The embedded default service (echo engine), stopped after the test."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(ServiceOptions()),
        ws="websockets-sansio",
        lifespan="on",
        log_level="warning",
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(STARTUP_S):
            while not server.started:
                if serving.done():
                    serving.result()  # raises why the service did not start
                await asyncio.sleep(0.05)
        yield f"ws://127.0.0.1:{port}/v1/realtime"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, STARTUP_S)
        sock.close()


@pytest.fixture(scope="module")
def spoken_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.fail("espeak-ng is not installed (Debian package espeak-ng)")
    path = tmp_path_factory.mktemp("call") / "hello.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(path), "Hello there, how are you today?"], check=True, timeout=60
    )
    return path


async def test_a_call_to_the_echo_service_gets_a_spoken_reply(
    service_url: str, spoken_wav: Path, tmp_path: Path
) -> None:
    out = tmp_path / "reply.wav"
    report = await run_call(service_url, spoken_wav, out, realtime=False, timeout=60.0)

    reply = report.response
    assert report.ok, [error.error.describe() for error in reply.errors]
    assert reply.user_transcript  # pocketsphinx heard something
    assert reply.reply_text.strip()
    assert reply.audio_ms > 300.0
    audio, rate = read_wav(out)
    assert rate == reply.sample_rate == 24_000
    assert np.array_equal(audio, reply.audio)
    assert reply.x_turn is not None and reply.x_turn.engine == "echo"
    assert reply.x_turn.timings is not None
    assert "first_audio_sent" in reply.x_turn.timings.stages_ms
    assert report.turn.first_packet_latency_ms is not None

    # Every event of a type the SDK models matched its model (none fell back to generic).
    generic = [
        event.type
        for event in reply.events
        if event.type in EVENT_MODELS and type(event) is ServerEvent
    ]
    assert generic == []
    assert sum(isinstance(event, OutputAudioDelta) for event in reply.events) > 1
