"""RealtimeClient: connecting, session updates, audio streaming and pacing, events, failures."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest

import realtime.client.client as client_module
from benchmarks.harness.ports import free_port
from realtime.client import (
    RealtimeClient,
    RealtimeConnectionClosed,
    RealtimeConnectionError,
    RealtimeServerError,
    ResponseDone,
    SpeechStarted,
)
from tests.realtime.client.fake_server import FakeRealtimeServer, FakeScript
from tests.realtime.client.support import utterance

# Hang guard for operations that must fail fast; far above what they take.
FAIL_FAST_S = 5.0


@pytest.fixture
async def silent_tcp_port() -> AsyncIterator[int]:
    """A port that accepts TCP connections and never answers the WebSocket handshake."""
    held: list[asyncio.StreamWriter] = []

    async def hold(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield int(server.sockets[0].getsockname()[1])
    finally:
        for writer in held:
            writer.close()
        server.close()
        await server.wait_closed()


async def test_connect_waits_for_session_created_and_exposes_the_session(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        assert client.session["object"] == "realtime.session"
        assert (client.input_rate, client.output_rate) == (24_000, 24_000)
        assert client.recent_event_types == ["session.created"]
    assert client.closed


async def test_session_update_round_trip_applies_the_servers_answer(
    fake_server: FakeRealtimeServer,
) -> None:
    patch = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
    async with RealtimeClient.connect(fake_server.url, session=patch) as client:
        assert client.input_rate == 16_000
        assert client.session["audio"]["input"]["format"]["rate"] == 16_000
        sent = fake_server.recording.events[0]
        assert sent["type"] == "session.update" and sent["session"] == patch
        assert sent["event_id"].startswith("event_")

        confirmed = await client.update_session({"instructions": "be brief"})
        assert confirmed["instructions"] == "be brief"
        assert client.session["instructions"] == "be brief"


async def test_a_rejected_session_update_raises_with_the_servers_message(
    fake_server: FakeRealtimeServer,
) -> None:
    patch = {"audio": {"input": {"format": {"rate": 44100}}}}
    async with asyncio.timeout(FAIL_FAST_S):
        with pytest.raises(RealtimeServerError) as caught:
            await RealtimeClient.connect(fake_server.url, session=patch)
    message = str(caught.value)
    assert message.startswith("server rejected session.update: invalid_request_error:")
    assert "session.audio.input.format.rate" in message
    assert caught.value.event.error.code == "invalid_value"


async def test_client_can_be_awaited_and_closed_explicitly(
    fake_server: FakeRealtimeServer,
) -> None:
    client = await RealtimeClient.connect(fake_server.url)
    assert not client.closed
    await client.close()
    await client.close()  # closing twice is harmless
    assert client.closed
    with pytest.raises(RealtimeConnectionClosed):
        await client.commit()


async def test_an_unused_port_gives_a_connection_error_quickly() -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"
    async with asyncio.timeout(FAIL_FAST_S):
        with pytest.raises(RealtimeConnectionError) as caught:
            await RealtimeClient.connect(url)
    assert str(caught.value) == f"could not connect to {url}: connection refused"


async def test_a_stalled_handshake_is_a_connection_error_after_open_timeout(
    silent_tcp_port: int,
) -> None:
    url = f"ws://127.0.0.1:{silent_tcp_port}/v1/realtime"
    async with asyncio.timeout(FAIL_FAST_S):
        with pytest.raises(RealtimeConnectionError, match=r"timed out after 0\.3 s"):
            await RealtimeClient.connect(url, open_timeout=0.3)


async def test_a_server_that_never_opens_a_session_is_a_connection_error() -> None:
    async with FakeRealtimeServer(FakeScript(open_session=False)) as server:
        async with asyncio.timeout(FAIL_FAST_S):
            with pytest.raises(RealtimeConnectionError, match="did not open a Realtime session"):
                await RealtimeClient.connect(server.url, open_timeout=0.3)


async def test_a_non_realtime_path_is_a_connection_error_naming_the_http_status(
    fake_server: FakeRealtimeServer,
) -> None:
    url = fake_server.url.replace("/v1/realtime", "/nowhere")
    with pytest.raises(RealtimeConnectionError, match="404"):
        await RealtimeClient.connect(url)


async def test_a_bad_url_is_a_connection_error() -> None:
    with pytest.raises(RealtimeConnectionError, match="could not connect to http://x"):
        await RealtimeClient.connect("http://x")


async def test_real_time_streaming_takes_about_the_audio_duration_in_20_ms_chunks(
    fake_server: FakeRealtimeServer,
) -> None:
    audio = np.zeros(24_000, dtype=np.int16)  # 1 s at the session's 24 kHz
    async with RealtimeClient.connect(fake_server.url) as client:
        started = time.monotonic()
        last_sent = await client.stream_audio(audio, sample_rate=24_000)
        finished = time.monotonic()
        appends = fake_server.recording.appends
        await fake_server.recording.wait_until(lambda: len(appends) == 50)
    assert finished - started >= 0.8
    assert started + 0.8 <= last_sent <= finished
    assert [append.samples for append in appends] == [480] * 50


async def test_real_time_chunks_never_leave_before_a_microphone_would_deliver_them(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        started = time.monotonic()
        await client.stream_audio(np.zeros(4_800, dtype=np.int16), sample_rate=24_000)
        appends = fake_server.recording.appends
        await fake_server.recording.wait_until(lambda: len(appends) == 10)
    for index, append in enumerate(appends):
        assert append.received_at >= started + (index + 1) * 0.020


class FakeClock:
    """The client module's clock and sleeps, on a clock of their own: pacing is checked by
    what the client schedules, not by how fast a busy machine runs it."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)

    def __getattr__(self, name: str) -> object:  # the rest of ``asyncio`` and ``time``
        return getattr(asyncio, name, None) or getattr(time, name)


def fake_clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(client_module, "time", fake)
    monkeypatch.setattr(client_module, "asyncio", fake)
    return fake


async def test_real_time_pacing_absorbs_slow_sends_instead_of_drifting(
    fake_server: FakeRealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        send_audio = client.append_audio
        fake = fake_clock(monkeypatch)

        async def slow_link_append(pcm: np.ndarray) -> None:
            await send_audio(pcm)
            fake.now += 0.015  # each send takes 15 ms of a 20 ms chunk

        monkeypatch.setattr(client, "append_audio", slow_link_append)
        started = fake.now
        await client.stream_audio(np.zeros(24_000, dtype=np.int16), sample_rate=24_000)
        elapsed = fake.now - started
    # On schedule: each chunk leaves once it has been "spoken", the last at 1.0 s, and takes
    # its 15 ms. Sleeping a chunk's duration after each send would take 1.75 s.
    assert elapsed == pytest.approx(1.015, abs=1e-6)


async def test_streaming_without_pacing_never_waits(
    fake_server: FakeRealtimeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    audio = np.zeros(48_000, dtype=np.int16)  # 2 s
    async with RealtimeClient.connect(fake_server.url) as client:
        with monkeypatch.context() as patch:
            fake = fake_clock(patch)
            await client.stream_audio(audio, sample_rate=24_000, realtime=False)
        appends = fake_server.recording.appends
        await fake_server.recording.wait_until(lambda: len(appends) == 100)
    assert fake.sleeps and all(seconds == 0 for seconds in fake.sleeps)
    assert sum(append.samples for append in appends) == 48_000


async def test_streaming_resamples_to_the_session_rate_and_honours_chunk_ms(
    fake_server: FakeRealtimeServer,
) -> None:
    patch = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}}
    audio_24k = utterance(600.0, 0.0, rate=24_000)  # 14 400 samples = 600 ms
    async with RealtimeClient.connect(fake_server.url, session=patch) as client:
        await client.stream_audio(audio_24k, sample_rate=24_000, chunk_ms=30, realtime=False)
        appends = fake_server.recording.appends
        await fake_server.recording.wait_until(lambda: sum(a.samples for a in appends) >= 9_600)
    assert [append.samples for append in appends] == [480] * 20  # 30 ms at 16 kHz


async def test_send_silence_sends_zeros_for_the_requested_duration(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        await client.send_silence(110, realtime=False)
        appends = fake_server.recording.appends
        await fake_server.recording.wait_until(lambda: len(appends) == 6)
    assert [append.samples for append in appends] == [480] * 5 + [240]
    assert not any(append.voiced for append in appends)


async def test_setting_stop_ends_a_stream_before_its_next_chunk(
    fake_server: FakeRealtimeServer,
) -> None:
    stop = asyncio.Event()
    async with RealtimeClient.connect(fake_server.url) as client:
        streaming = asyncio.create_task(
            client.stream_audio(np.zeros(240_000, np.int16), sample_rate=24_000, stop=stop)
        )
        await fake_server.recording.wait_until(lambda: len(fake_server.recording.appends) >= 3)
        stop.set()
        await asyncio.wait_for(streaming, FAIL_FAST_S)
        sent = len(fake_server.recording.appends)
    assert 3 <= sent < 500


async def test_control_events_have_the_openai_shapes(fake_server: FakeRealtimeServer) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        await client.commit()
        await client.clear()
        await client.create_response()
        await client.create_response(instructions="shorter", output_modalities=["text"])
        await client.cancel_response()
        await client.cancel_response("resp_1")
        await client.send({"type": "output_audio_buffer.clear"})
        events = fake_server.recording.events
        await fake_server.recording.wait_until(lambda: len(events) == 7)
    assert events == [
        {"type": "input_audio_buffer.commit"},
        {"type": "input_audio_buffer.clear"},
        {"type": "response.create"},
        {
            "type": "response.create",
            "response": {"instructions": "shorter", "output_modalities": ["text"]},
        },
        {"type": "response.cancel"},
        {"type": "response.cancel", "response_id": "resp_1"},
        {"type": "output_audio_buffer.clear"},
    ]


async def test_audio_must_be_mono_int16(fake_server: FakeRealtimeServer) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        with pytest.raises(TypeError, match="int16"):
            await client.append_audio(np.zeros(480, dtype=np.float32))
        with pytest.raises(TypeError, match="mono"):
            await client.stream_audio(np.zeros((480, 2), np.int16), sample_rate=24_000)


async def test_wait_for_returns_the_match_and_skips_what_came_before(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        await client.stream_audio(utterance(200, 300), sample_rate=24_000, realtime=False)
        started = await client.wait_for(lambda event: isinstance(event, SpeechStarted), 3.0)
        done = await client.wait_for(("response.done", "error"), 3.0)
    assert isinstance(started, SpeechStarted) and started.audio_start_ms == 0
    assert isinstance(done, ResponseDone) and done.status == "completed"
    assert done.received_at >= started.received_at


async def test_wait_for_timeout_names_what_was_awaited_and_the_last_events(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        with pytest.raises(TimeoutError) as caught:
            await client.wait_for("response.done", 0.2)
        with pytest.raises(TimeoutError, match=r"no server event within 0.05 s"):
            await client.next_event(0.05)
    assert str(caught.value) == (
        "timed out after 0.2 s waiting for response.done; last events received: session.created"
    )


async def test_a_server_closing_the_connection_ends_events_and_fails_sends(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        await fake_server.close_connections()
        seen = [event.type async for event in client.events()]
        assert seen == []  # session.created was consumed by connect
        assert client.closed
        with pytest.raises(RealtimeConnectionClosed, match="code 1000"):
            await client.next_event(1.0)
        with pytest.raises(RealtimeConnectionClosed, match=r"while waiting for response\.done"):
            await client.wait_for("response.done", 1.0)
        with pytest.raises(RealtimeConnectionClosed, match=r"before sending 'response\.create'"):
            await client.create_response()
