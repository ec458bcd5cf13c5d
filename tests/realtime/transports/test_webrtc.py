"""WebRTC calls with the real service (echo engine, silero VAD, espeak-ng) on 127.0.0.1,
driven by an aiortc client: a spoken turn, bad offers, hang-up, a vanished caller, and a
host whose only interface is loopback."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import uvicorn

from benchmarks.harness.offers import make_offer
from benchmarks.harness.service import ServiceProcess
from realtime.client.events import OutputAudioDelta, ResponseDone, ServerEvent
from realtime.client.turn import speak_turn
from realtime.client.webrtc import RealtimeWebRtcClient
from realtime.server.app import create_app
from realtime.server.resources import ServiceOptions
from realtime.transports.webrtc.options import WebRtcOptions
from tests.realtime.transports.conftest import active_sessions, wait_for_active_sessions

pytestmark = pytest.mark.slow  # WebRTC calls streaming at real-time pace

TURN_TIMEOUT_S = 30.0
REPO_ROOT = Path(__file__).resolve().parents[3]


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


async def test_a_spoken_turn_over_webrtc_gets_reply_audio_back(
    webrtc_service: ServiceProcess, utterance_16k: np.ndarray
) -> None:
    client = await RealtimeWebRtcClient.connect(webrtc_service.http_url, allow_loopback=True)
    async with client:
        turn = await speak_turn(
            client, utterance_16k, 16_000, timeout=TURN_TIMEOUT_S, trailing_silence_ms=6000
        )
    response = turn.response
    assert response.status == "completed", [e.error.describe() for e in response.errors]
    assert response.user_transcript, "the echo engine should transcribe the caller's speech"
    assert response.transcript == f"You said: {response.user_transcript}"
    assert response.audio_ms > 500, "the reply should come back as audio on the track"
    assert rms(response.audio) > 300, "the reply audio should not be silence"
    assert turn.first_packet_latency_ms is not None and turn.first_packet_latency_ms > 0

    # As in OpenAI's WebRTC API: no audio deltas on the data channel (the client makes its
    # deltas from the media track), and the playback of the reply is announced.
    deltas = [event for event in response.events if isinstance(event, OutputAudioDelta)]
    assert deltas and all(not event.raw for event in deltas)
    played = [
        event
        for event in response.events
        if event.type in ("output_audio_buffer.started", "output_audio_buffer.stopped")
    ]
    assert [event.type for event in played] == [
        "output_audio_buffer.started",
        "output_audio_buffer.stopped",
    ]
    assert {event.raw["response_id"] for event in played} == {response.response_id}


async def test_talking_over_the_reply_cuts_it_off_and_says_so_on_the_data_channel(
    webrtc_service: ServiceProcess, utterance_16k: np.ndarray
) -> None:
    client = await RealtimeWebRtcClient.connect(webrtc_service.http_url, allow_loopback=True)
    seen: list[ServerEvent] = []
    reply_playing, reply_done = asyncio.Event(), asyncio.Event()

    async def read() -> None:
        while True:
            event = await client.next_event()
            seen.append(event)
            if event.type == "output_audio_buffer.started":
                reply_playing.set()
            elif isinstance(event, ResponseDone):
                reply_done.set()

    reader = asyncio.create_task(read())
    try:
        async with asyncio.timeout(TURN_TIMEOUT_S):
            await client.stream_audio(utterance_16k, sample_rate=16_000)
            await client.send_silence(15_000, stop=reply_playing)
            assert reply_playing.is_set(), "the reply should have started playing"
            await client.stream_audio(utterance_16k, sample_rate=16_000, stop=reply_done)
            await reply_done.wait()
    finally:
        reader.cancel()
        await client.close()

    done = next(event for event in seen if isinstance(event, ResponseDone))
    assert done.status == "cancelled"
    assert (done.response.status_details or {}).get("reason") == "turn_detected"
    kinds = [(event.type, event.raw.get("response_id")) for event in seen]
    assert ("output_audio_buffer.cleared", done.response.id) in kinds
    assert ("output_audio_buffer.stopped", done.response.id) not in kinds
    second_speech = [i for i, (kind, _) in enumerate(kinds) if kind.endswith("speech_started")][1]
    assert kinds.index(("output_audio_buffer.cleared", done.response.id)) > second_speech


@pytest.mark.parametrize(
    ("case", "status", "says"),
    [
        ("wrong content type", 415, "application/sdp"),
        ("oversized", 413, "bytes"),
        ("not sdp", 400, "v=0"),
        ("no audio", 400, "no audio"),
        ("no opus", 400, "Opus"),
        ("no fingerprint", 400, "fingerprint"),
    ],
)
async def test_a_bad_offer_gets_a_4xx_with_a_clear_message(
    webrtc_service: ServiceProcess, case: str, status: int, says: str
) -> None:
    content_type = "application/sdp"
    if case == "wrong content type":
        content_type, body = "text/plain", await make_offer()
    elif case == "oversized":
        body = (await make_offer()) + "a=x-padding:" + "x" * 100_000 + "\r\n"
    elif case == "not sdp":
        body = "hello, this is not an offer"
    elif case == "no audio":
        body = await make_offer(audio=False)
    elif case == "no opus":
        body = await make_offer(codecs=("audio/pcmu",))
    else:
        body = "".join(
            line
            for line in (await make_offer()).splitlines(keepends=True)
            if not line.startswith("a=fingerprint")
        )
    async with httpx.AsyncClient(base_url=webrtc_service.http_url, timeout=10) as http:
        reply = await http.post(
            "/v1/realtime/calls", content=body.encode(), headers={"Content-Type": content_type}
        )
        metrics = (await http.get("/metrics")).text
    assert reply.status_code == status, reply.text
    error = reply.json()["error"]
    assert says.lower() in error["message"].lower()
    assert error["type"] == "invalid_request_error" and error["code"]
    assert active_sessions(metrics, "webrtc") == 0, "a rejected offer must not leave a session"


@pytest.mark.parametrize("how", ["closing the peer connection", "the hang-up endpoint"])
async def test_hanging_up_frees_the_session(webrtc_service: ServiceProcess, how: str) -> None:
    client = await RealtimeWebRtcClient.connect(webrtc_service.http_url, allow_loopback=True)
    try:
        assert await wait_for_active_sessions(webrtc_service, "webrtc", 1) == 1
    finally:
        if how == "the hang-up endpoint":
            await client.hang_up()
        else:
            await client.close()
    assert await wait_for_active_sessions(webrtc_service, "webrtc", 0) == 0


async def test_hanging_up_an_unknown_call_is_a_404(webrtc_service: ServiceProcess) -> None:
    async with httpx.AsyncClient(base_url=webrtc_service.http_url, timeout=10) as http:
        reply = await http.post("/v1/realtime/calls/rtc_nosuchcall/hangup")
    assert reply.status_code == 404
    assert "rtc_nosuchcall" in reply.json()["error"]["message"]


async def test_the_answer_offers_loopback_candidates_only_when_allowed(
    webrtc_service: ServiceProcess, service_without_loopback: ServiceProcess
) -> None:
    async def answer_of(service: ServiceProcess) -> str:
        async with httpx.AsyncClient(base_url=service.http_url, timeout=10) as http:
            reply = await http.post(
                "/v1/realtime/calls",
                content=(await make_offer()).encode(),
                headers={"Content-Type": "application/sdp"},
            )
            assert reply.status_code == 201, reply.text
            await http.post(reply.headers["location"] + "/hangup")
        return reply.text

    def loopback_candidates(sdp: str) -> list[str]:
        return [line for line in sdp.splitlines() if "candidate" in line and " 127.0.0.1 " in line]

    assert loopback_candidates(await answer_of(webrtc_service))
    assert not loopback_candidates(await answer_of(service_without_loopback))


@pytest.fixture(scope="module")
def service_without_loopback(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("no-loopback") / "serve.log"
    with ServiceProcess(log_path=log) as service:
        yield service


@pytest.fixture
async def quick_timeout_service() -> AsyncIterator[str]:
    """The service in this process, dropping calls whose audio stops for 1.5 s or that do
    not connect within 3 s."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    options = ServiceOptions(
        webrtc=WebRtcOptions(allow_loopback=True, media_timeout_s=1.5, connect_timeout_s=3.0)
    )
    config = uvicorn.Config(create_app(options), lifespan="on", log_level="warning")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        async with asyncio.timeout(60):
            while not server.started:
                if serving.done():
                    serving.result()
                await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(serving, 60)
        sock.close()


async def test_a_caller_that_vanishes_is_hung_up_when_its_audio_stops(
    quick_timeout_service: str,
) -> None:
    caller = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.realtime.transports.vanishing_caller", quick_timeout_service,
        cwd=REPO_ROOT, stdout=asyncio.subprocess.PIPE, start_new_session=True,
    )  # fmt: skip
    try:
        assert caller.stdout is not None
        line = await asyncio.wait_for(caller.stdout.readline(), 30)
        assert line.startswith(b"connected"), line
        async with httpx.AsyncClient(base_url=quick_timeout_service, timeout=10) as http:

            async def active() -> float:
                return active_sessions((await http.get("/metrics")).text, "webrtc")

            assert await active() == 1
            caller.send_signal(signal.SIGKILL)  # no hang-up, no DTLS close: a closed tab
            await caller.wait()
            for _ in range(150):  # up to 15 s
                if await active() == 0:
                    break
                await asyncio.sleep(0.1)
            assert await active() == 0, "the vanished caller's session should have ended"
    finally:
        if caller.returncode is None:
            caller.kill()
            await caller.wait()


async def test_a_call_whose_connection_never_forms_is_ended(quick_timeout_service: str) -> None:
    async with httpx.AsyncClient(base_url=quick_timeout_service, timeout=10) as http:
        # The caller sends its offer and goes away: its candidates lead nowhere.
        reply = await http.post(
            "/v1/realtime/calls",
            content=(await make_offer()).encode(),
            headers={"Content-Type": "application/sdp"},
        )
        assert reply.status_code == 201

        async def active() -> float:
            return active_sessions((await http.get("/metrics")).text, "webrtc")

        assert await active() == 1
        for _ in range(150):  # up to 15 s
            if await active() == 0:
                break
            await asyncio.sleep(0.1)
        assert await active() == 0, "a call that never connects must not keep its session"


def test_on_a_loopback_only_host_calls_connect_only_with_loopback_candidates() -> None:
    """aioice leaves 127.0.0.1 out of its candidates: in a network namespace whose only
    interface is loopback, no call forms unless the service allows loopback candidates."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        pytest.skip("needs util-linux unshare and iproute2 ip")
    probe = subprocess.run(["unshare", "--net", "true"], capture_output=True, timeout=10)
    if probe.returncode != 0:
        pytest.skip(f"cannot create a network namespace here: {probe.stderr.decode().strip()}")
    module = "tests.realtime.transports.loopback_only_call"
    script = f"ip link set lo up && exec {sys.executable} -m {module}"
    result = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome == {"without": False, "with": True}, result.stderr[-3000:]
