"""A spoken conversation with the real service over WebSocket, driven by the SDK."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
import sys

import httpx
import numpy as np
import pytest
from pydantic import TypeAdapter

from benchmarks.harness.service import ServiceProcess
from realtime.client import RealtimeClient, collect_response, speak_turn
from realtime.client.events import ServerEvent, SpeechStopped

TURN_TIMEOUT_S = 30.0
EXTENSION_EVENTS = {"response.reasoning.delta", "response.reasoning.done"}


def rms(pcm: np.ndarray) -> float:
    return float(np.sqrt(np.mean(pcm.astype(np.float64) ** 2))) if len(pcm) else 0.0


def types(events: list[ServerEvent]) -> list[str]:
    return [event.type for event in events]


async def test_a_spoken_turn_gets_vad_events_a_transcript_and_an_audible_reply(
    echo_service: ServiceProcess, say
) -> None:
    async with RealtimeClient.connect(echo_service.ws_url) as client:
        turn = await speak_turn(
            client, say("Hello there, how are you doing today?"), 24_000, timeout=TURN_TIMEOUT_S
        )
    response = turn.response
    seen = types(response.events)
    assert response.status == "completed"
    assert response.user_transcript, "the echo engine should transcribe the user's speech"
    assert response.transcript == f"You said: {response.user_transcript}"
    assert rms(response.audio) > 300, "the reply audio should not be silence"
    assert response.audio_ms > 500
    assert response.sample_rate == 24_000
    assert turn.first_packet_latency_ms is not None and turn.first_packet_latency_ms > 0
    x_turn = response.x_turn
    assert x_turn is not None and x_turn.engine == "echo" and not x_turn.simulated
    stages = x_turn.timings.stages_ms
    assert stages["speech_stopped"] == 0.0
    # The reply may have started speculatively at a pause before the turn was confirmed.
    started = stages.get("speculative_start", 0.0)
    assert started <= 0.0
    assert (
        started
        <= stages["engine_request_sent"]
        <= stages["first_tts_audio"]
        <= stages["first_audio_sent"]
    )
    assert "response.output_audio_transcript.delta" in seen
    assert seen.index("response.output_audio.done") < seen.index("response.done")


async def test_speech_started_and_stopped_bracket_the_committed_turn(
    echo_service: ServiceProcess, say
) -> None:
    events: list[ServerEvent] = []
    async with RealtimeClient.connect(echo_service.ws_url) as client:
        reader = asyncio.create_task(_record(client, events, until="response.done"))
        await client.stream_audio(say("Please tell me the time."), sample_rate=24_000)
        await client.send_silence(1500)
        await asyncio.wait_for(reader, TURN_TIMEOUT_S)
    seen = types(events)
    order = [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "response.created",
        "conversation.item.input_audio_transcription.completed",
        "response.output_audio.delta",
        "response.done",
    ]
    positions = [seen.index(kind) for kind in order]
    assert positions == sorted(positions), seen
    started = next(e for e in events if e.type == "input_audio_buffer.speech_started")
    stopped = next(e for e in events if e.type == "input_audio_buffer.speech_stopped")
    committed = next(e for e in events if e.type == "input_audio_buffer.committed")
    assert started.raw["item_id"] == stopped.raw["item_id"] == committed.raw["item_id"]
    assert 500 < stopped.raw["audio_end_ms"] - started.raw["audio_start_ms"] < 3000


async def test_every_server_event_validates_against_the_openai_models(
    echo_service: ServiceProcess, say
) -> None:
    from openai.types.realtime import RealtimeServerEvent

    adapter: TypeAdapter[RealtimeServerEvent] = TypeAdapter(RealtimeServerEvent)
    async with RealtimeClient.connect(echo_service.ws_url) as client:
        turn = await speak_turn(
            client, say("What a lovely morning."), 24_000, timeout=TURN_TIMEOUT_S
        )
    raw_events = [event.raw for event in turn.response.events]
    assert raw_events
    for raw in raw_events:
        if raw["type"] in EXTENSION_EVENTS:
            continue
        adapter.validate_python(raw)


async def test_barge_in_cancels_the_reply_and_keeps_only_what_was_sent(
    echo_service: ServiceProcess, say
) -> None:
    events: list[ServerEvent] = []
    async with RealtimeClient.connect(echo_service.ws_url) as client:
        reader = asyncio.create_task(_record(client, events, until=None))
        await client.stream_audio(
            say("Tell me about the history of the great city of Rome."), sample_rate=24_000
        )
        stop = asyncio.Event()
        silence = asyncio.create_task(client.send_silence(15_000, stop=stop))
        await _wait_until(lambda: "response.output_audio.delta" in types(events), TURN_TIMEOUT_S)
        stop.set()
        await silence
        first_response = next(e for e in events if e.type == "response.created").raw["response"][
            "id"
        ]
        await client.stream_audio(say("Stop, one two three four five."), sample_rate=24_000)
        await client.send_silence(1500)
        await _wait_until(lambda: types(events).count("response.done") >= 2, TURN_TIMEOUT_S)
        reader.cancel()
    seen = types(events)
    done_first = next(
        e for e in events if e.type == "response.done" and e.raw["response"]["id"] == first_response
    )
    assert done_first.raw["response"]["status"] == "cancelled"
    assert done_first.raw["response"]["status_details"]["reason"] == "turn_detected"
    barge_in = [i for i, e in enumerate(events) if e.type == "input_audio_buffer.speech_started"][1]
    late_audio = [
        e
        for e in events[barge_in:]
        if e.type == "response.output_audio.delta" and e.raw["response_id"] == first_response
    ]
    assert len(late_audio) <= 1, "reply audio must stop within one frame of the barge-in"
    full_reply = next(
        e
        for e in events
        if e.type == "response.output_audio_transcript.delta"
        and e.raw["response_id"] == first_response
    ).raw["delta"]
    heard = done_first.raw["response"]["output"][0]["content"][0]["transcript"]
    assert full_reply.startswith("You said:")
    assert len(heard) < len(full_reply) and full_reply.startswith(heard)
    assert seen.count("response.done") >= 2
    second_done = [e for e in events if e.type == "response.done"][-1]
    assert second_done.raw["response"]["status"] == "completed"


async def test_malformed_events_get_error_events_and_the_session_keeps_working(
    echo_service: ServiceProcess, say
) -> None:
    speech = say("One two three four five six seven eight.")
    half = len(speech) // 2
    bad_messages = {
        "invalid_json": "{not json",
        "invalid_event_type": json.dumps({"type": "response.explode", "event_id": "e1"}),
        "invalid_value": json.dumps({"type": "input_audio_buffer.append", "audio": 42}),
        "invalid_audio": json.dumps({"type": "input_audio_buffer.append", "audio": "@@@"}),
        "unknown_parameter": json.dumps({"type": "response.cancel", "bogus": 1}),
        "message_too_large": json.dumps(
            {"type": "input_audio_buffer.append", "audio": "A" * (9 * 1024 * 1024)}
        ),
    }
    odd = base64.b64encode(b"\x01\x02\x03").decode()
    bad_messages["invalid_audio_odd"] = json.dumps(
        {"type": "input_audio_buffer.append", "audio": odd}
    )
    async with RealtimeClient.connect(echo_service.ws_url) as client:
        await client.stream_audio(speech[:half], sample_rate=24_000)
        for message in bad_messages.values():
            await client.send_raw(message)
        errors = [await client.wait_for("error", timeout=10) for _ in bad_messages]
        codes = sorted(e.raw["error"]["code"] for e in errors)
        assert codes == sorted(
            [
                "invalid_json",
                "invalid_event_type",
                "invalid_value",
                "invalid_audio",
                "unknown_parameter",
                "message_too_large",
                "invalid_audio",
            ]
        )
        assert all(e.raw["error"]["message"] for e in errors)
        odd_error = next(e for e in errors if "PCM16" in e.raw["error"]["message"])
        assert odd_error.raw["error"]["param"] == "audio"
        await client.stream_audio(speech[half:], sample_rate=24_000)
        await client.send_silence(1500)
        done = await client.wait_for(
            "conversation.item.input_audio_transcription.completed", timeout=TURN_TIMEOUT_S
        )
        response = await collect_response(client, timeout=TURN_TIMEOUT_S)
    assert done.raw["usage"]["seconds"] >= 0.9 * len(speech) / 24_000 - 0.35
    assert response.status == "completed"


async def test_two_sessions_at_once_do_not_interfere(echo_service: ServiceProcess, say) -> None:
    """Two sessions talking at once: each turn ends where its own speech ends, and each reply
    echoes its own transcript. (Which words pocketsphinx makes of espeak-ng's voice changes
    with the least difference in the audio, so the words themselves are not asserted.)"""

    async def talk(text: str) -> tuple[str, str, float, float]:
        async with RealtimeClient.connect(echo_service.ws_url) as client:
            turn = await speak_turn(client, say(text), 24_000, timeout=TURN_TIMEOUT_S)
            stopped = [e for e in turn.response.events if isinstance(e, SpeechStopped)]
            return (
                turn.response.user_transcript or "",
                turn.response.transcript,
                float(stopped[0].audio_end_ms) - turn.voiced_ms,
                turn.response.audio_ms,
            )

    (heard_a, reply_a, lead_a, ms_a), (heard_b, reply_b, lead_b, ms_b) = await asyncio.gather(
        talk("One two three."),
        talk("What is the weather like in Paris today, and will it rain tomorrow morning?"),
    )
    # The turn's end less the speech sent is the same lead for both (~±100 ms of endpointing)
    # only if each session's turn is its own audio: the two differ by about 3 s of speech.
    assert abs(lead_a - lead_b) < 300
    assert heard_a != heard_b
    assert reply_a == f"You said: {heard_a}" and reply_b == f"You said: {heard_b}"
    assert ms_a > 0 and ms_b > 0


async def test_16khz_audio_both_ways_when_the_session_says_so(
    echo_service: ServiceProcess, say
) -> None:
    session = {
        "audio": {
            "input": {"format": {"type": "audio/pcm", "rate": 16000}},
            "output": {"format": {"type": "audio/pcm", "rate": 16000}},
        }
    }
    async with RealtimeClient.connect(echo_service.ws_url, session=session) as client:
        assert client.input_rate == 16_000 and client.output_rate == 16_000
        turn = await speak_turn(
            client, say("Good evening, my friend.", 16_000), 16_000, timeout=TURN_TIMEOUT_S
        )
    assert turn.response.sample_rate == 16_000
    assert rms(turn.response.audio) > 300


async def test_manual_commit_when_turn_detection_is_off(echo_service: ServiceProcess, say) -> None:
    session = {"audio": {"input": {"turn_detection": None}}}
    events: list[ServerEvent] = []
    async with RealtimeClient.connect(echo_service.ws_url, session=session) as client:
        await client.stream_audio(say("Seven eight nine ten."), sample_rate=24_000, realtime=False)
        await client.send_silence(300, realtime=False)
        await client.commit()
        committed = await client.wait_for("input_audio_buffer.committed", timeout=10)
        await client.create_response()
        response = await collect_response(client, timeout=TURN_TIMEOUT_S)
        events = response.events
        with pytest.raises(TimeoutError):
            await client.wait_for("input_audio_buffer.speech_started", timeout=0.3)
    assert committed.raw["item_id"]
    assert response.status == "completed" and rms(response.audio) > 300
    assert "input_audio_buffer.speech_started" not in types(events)


async def test_text_items_and_text_only_responses(echo_service: ServiceProcess) -> None:
    async with RealtimeClient.connect(
        echo_service.ws_url, session={"output_modalities": ["text"]}
    ) as client:
        await client.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "hello world"}],
                },
            }
        )
        await client.wait_for("conversation.item.done", timeout=10)
        await client.create_response()
        response = await collect_response(client, timeout=TURN_TIMEOUT_S)
    assert response.text == "You said: hello world"
    assert len(response.audio) == 0
    assert "response.output_text.delta" in types(response.events)


async def test_cancelling_with_no_active_response_is_an_error_not_a_disconnect(
    echo_service: ServiceProcess,
) -> None:
    async with RealtimeClient.connect(echo_service.ws_url) as client:
        await client.cancel_response()
        error = await client.wait_for("error", timeout=10)
        assert error.raw["error"]["code"] == "response_cancel_not_active"
        await client.update_session({"instructions": "still here"})


@pytest.mark.parametrize(
    "turn_detection",
    [
        {"type": "server_vad", "silence_duration_ms": 400},
        {"type": "semantic_vad", "eagerness": "high", "interrupt_response": True},
        {"type": "semantic_vad"},
    ],
    ids=["server_vad", "semantic_vad_high", "semantic_vad_default"],
)
async def test_the_official_openai_client_holds_a_turn(
    echo_service: ServiceProcess, say, turn_detection: dict[str, object]
) -> None:
    from openai import AsyncOpenAI

    openai_client = AsyncOpenAI(
        api_key="unused", websocket_base_url=f"ws://127.0.0.1:{echo_service.port}/v1"
    )
    speech = say("Nice to meet you.")
    seen: list[str] = []
    async with openai_client.realtime.connect(model="step-audio-r1") as connection:
        await connection.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["audio"],
                "audio": {"input": {"turn_detection": turn_detection}},  # type: ignore[typeddict-item]
            }
        )
        chunks = [speech[i : i + 4800] for i in range(0, len(speech), 4800)]
        chunks += [np.zeros(4800, np.int16)] * 10
        for chunk in chunks:
            await connection.input_audio_buffer.append(
                audio=base64.b64encode(chunk.tobytes()).decode()
            )
        audio_bytes = 0
        async with asyncio.timeout(TURN_TIMEOUT_S):
            async for event in connection:
                seen.append(event.type)
                if event.type == "response.output_audio.delta":
                    audio_bytes += len(base64.b64decode(event.delta))
                if event.type == "response.done":
                    assert event.response.status == "completed"
                    break
    assert "session.updated" in seen and "input_audio_buffer.speech_stopped" in seen
    assert "error" not in seen
    assert audio_bytes > 24_000  # more than half a second of reply


def test_health_and_metrics_report_the_service(echo_service: ServiceProcess) -> None:
    health = httpx.get(f"{echo_service.http_url}/healthz", timeout=5).json()
    assert health == {
        "status": "ok",
        "engine": "echo",
        "model": "echo-pocketsphinx",
        "simulated": False,
        "tts": "espeak-ng",
    }
    metrics = echo_service.metrics()
    for name in (
        "step_realtime_sessions_active",
        "step_realtime_turns_total",
        "step_realtime_errors_total",
        "step_realtime_stage_seconds_bucket",
    ):
        assert name in metrics
    assert 'step_realtime_stage_seconds_count{stage="first_packet"}' in metrics


def test_the_server_never_imports_torch() -> None:
    code = (
        "import sys; import realtime.server.app, realtime.server.resources, realtime.turns.silero;"
        "realtime.turns.silero.SileroVadModel(); assert 'torch' not in sys.modules, 'torch!'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


async def _record(client: RealtimeClient, sink: list[ServerEvent], until: str | None) -> None:
    async for event in client.events():
        sink.append(event)
        if until is not None and event.type == until:
            return


async def _wait_until(condition, timeout_s: float) -> None:  # type: ignore[no-untyped-def]
    """Poll ``condition`` (fed by a reader task) until it holds, at most ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the events list is filled by another task
            await asyncio.sleep(0.01)
