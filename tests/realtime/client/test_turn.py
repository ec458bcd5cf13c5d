"""collect_response gathers a reply exactly; speak_turn times latency from the end of speech."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from realtime.client import (
    OutputAudioDelta,
    RealtimeClient,
    RealtimeServerError,
    collect_response,
    speak_turn,
    voiced_end,
)
from tests.realtime.client.fake_server import FakeRealtimeServer, FakeScript, sine
from tests.realtime.client.support import utterance

FAIL_FAST_S = 5.0


async def test_collect_response_gathers_the_reply_exactly(fake_server: FakeRealtimeServer) -> None:
    script = fake_server.script
    async with RealtimeClient.connect(fake_server.url) as client:
        await client.stream_audio(utterance(200, 300), sample_rate=24_000, realtime=False)
        result = await collect_response(client, timeout=FAIL_FAST_S)
    reply = fake_server.recording.reply
    assert len(reply) == 4_800  # 5 deltas of 40 ms at 24 kHz
    assert result.audio.dtype == np.int16
    assert np.array_equal(result.audio, reply)
    assert result.sample_rate == 24_000
    assert result.audio_ms == pytest.approx(200.0)
    assert result.transcript == result.reply_text == "Hello there."
    assert result.text == ""
    assert result.reasoning == "".join(script.reasoning_deltas)
    assert result.user_transcript == script.user_transcript
    assert result.status == "completed"
    assert result.response_id is not None and result.response_id.startswith("resp_")
    assert result.x_turn is not None and result.x_turn.engine == "fake"
    assert result.errors == []
    deltas = [event for event in result.events if isinstance(event, OutputAudioDelta)]
    assert len(deltas) == script.reply_deltas
    assert result.first_audio_at == deltas[0].received_at
    assert result.last_audio_at == deltas[-1].received_at
    assert [event.type for event in result.events][:3] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
    ]
    assert result.events[-1] is result.done


async def test_collect_response_reply_audio_follows_the_output_rate(
    fake_server: FakeRealtimeServer,
) -> None:
    patch = {"audio": {"output": {"format": {"type": "audio/pcm", "rate": 16000}}}}
    async with RealtimeClient.connect(fake_server.url, session=patch) as client:
        await client.stream_audio(utterance(200, 300), sample_rate=24_000, realtime=False)
        result = await collect_response(client, timeout=FAIL_FAST_S)
    assert result.sample_rate == 16_000
    assert np.array_equal(result.audio, sine(440.0, 200.0, 16_000))


async def test_collect_response_timeout_says_what_is_missing_and_what_arrived() -> None:
    async with FakeRealtimeServer(FakeScript(answer=False)) as server:
        async with RealtimeClient.connect(server.url) as client:
            await client.stream_audio(utterance(200, 300), sample_rate=24_000, realtime=False)
            with pytest.raises(TimeoutError) as caught:
                await collect_response(client, timeout=0.3)
    assert str(caught.value) == (
        "no response.done within 0.3 s (no response.created received); last events received: "
        "session.created, input_audio_buffer.speech_started, "
        "input_audio_buffer.speech_stopped, input_audio_buffer.committed"
    )


async def test_a_server_error_before_the_response_surfaces_at_once() -> None:
    async with FakeRealtimeServer(FakeScript(error_on_append=True)) as server:
        async with RealtimeClient.connect(server.url) as client:
            async with asyncio.timeout(FAIL_FAST_S):
                with pytest.raises(RealtimeServerError) as caught:
                    await speak_turn(client, utterance(200, 0), 24_000, timeout=30.0)
            # speak_turn stopped streaming once the error arrived: far fewer than 10 s of chunks
            assert len(server.recording.appends) < 100
    assert str(caught.value) == (
        "server error before the response started: "
        "server_error: this fake server rejects audio (code=audio_rejected)"
    )


async def test_a_failed_response_keeps_its_error_and_status() -> None:
    async with FakeRealtimeServer(FakeScript(fail_response=True)) as server:
        async with RealtimeClient.connect(server.url) as client:
            await client.stream_audio(utterance(200, 300), sample_rate=24_000, realtime=False)
            result = await collect_response(client, timeout=FAIL_FAST_S)
    assert result.status == "failed"
    assert [error.error.code for error in result.errors] == ["engine_error"]
    assert len(result.audio) == 0 and result.first_audio_at is None
    assert result.reasoning == "The user greeted me."


async def test_speak_turn_times_latency_from_the_last_voiced_sample_sent() -> None:
    script = FakeScript(silence_window_ms=200.0, first_audio_delay_s=0.1)
    async with FakeRealtimeServer(script) as server:
        async with RealtimeClient.connect(server.url) as client:
            turn = await speak_turn(
                client,
                utterance(300, 200, rate=24_000),  # the file's own trailing silence is not speech
                24_000,
                trailing_silence_ms=5_000,
                timeout=FAIL_FAST_S,
            )
        recording = server.recording
    assert turn.realtime and turn.voiced_ms == pytest.approx(300.0)
    assert turn.utterance_ms == pytest.approx(500.0)
    latency = turn.first_packet_latency_ms
    assert latency is not None
    # The server could not end the turn before receiving the silence window, then waited.
    assert latency >= script.silence_window_ms + 1000 * script.first_audio_delay_s - 1.0

    # The clock starts at the send of the chunk holding the last voiced sample ...
    voiced = [index for index, append in enumerate(recording.appends) if append.voiced]
    assert voiced == list(range(15))  # 300 ms in 20 ms chunks
    last = voiced[-1]
    # (not before its place in the real-time schedule; the previous chunk's receipt is no
    # bound: a late-woken sender sends two chunks back to back)
    assert turn.last_voiced_sent_at >= turn.stream_started_at + (last + 1) * 0.020
    assert turn.last_voiced_sent_at <= recording.appends[last].received_at
    # ... and stops at the receipt of the first reply audio.
    assert recording.first_audio_sent_at is not None
    assert recording.first_audio_sent_at <= turn.response.first_audio_at  # type: ignore[operator]
    assert turn.speech_stopped_at is not None
    assert turn.last_voiced_sent_at < turn.speech_stopped_at < turn.response.first_audio_at  # type: ignore[operator]

    # The silence stopped with the reply instead of running its full 5 s.
    sent_ms = sum(append.samples for append in recording.appends) / 24
    assert sent_ms < 500 + 5_000 - 1_000
    assert np.array_equal(turn.response.audio, recording.reply)


async def test_speak_turn_resamples_the_utterance_to_the_session_rate(
    fake_server: FakeRealtimeServer,
) -> None:
    async with RealtimeClient.connect(fake_server.url) as client:
        turn = await speak_turn(
            client,
            utterance(400, 0, rate=16_000),
            16_000,
            trailing_silence_ms=400,
            realtime=False,
            timeout=FAIL_FAST_S,
        )
    appends = fake_server.recording.appends
    voiced_samples = sum(append.samples for append in appends if append.voiced)
    assert turn.input_rate == 24_000
    assert voiced_samples == pytest.approx(9_600, abs=480)  # 400 ms at 24 kHz
    assert turn.voiced_ms == pytest.approx(400.0, abs=10.0)
    assert turn.response.status == "completed"


def test_voiced_end_finds_where_speech_stops() -> None:
    rate = 16_000
    speech = sine(200.0, 300.0, rate)
    assert voiced_end(np.concatenate([speech, np.zeros(3_200, np.int16)]), rate) == 4_800
    hiss = np.full(3_200, 30, np.int16)  # about 48 dB below the tone
    assert voiced_end(np.concatenate([speech, hiss]), rate) == 4_800
    quiet = (sine(200.0, 300.0, rate) // 100).astype(np.int16)
    assert voiced_end(np.concatenate([quiet, np.zeros(800, np.int16)]), rate) == 4_800
    assert voiced_end(np.concatenate([np.zeros(800, np.int16), speech]), rate) == 5_600
    assert voiced_end(np.zeros(800, np.int16), rate) == 800
    assert voiced_end(np.zeros(0, np.int16), rate) == 0
