"""``audio.input.transcription``: the engine transcribes each committed turn beside the reply,
as delta and completed events (here the ``sim`` engine, whose transcript is SIMULATED)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.engines.sim import SimEngine, SimParams
from realtime.session.services import SessionServices, SessionSettings
from realtime.transports.client_input import hand_over
from tests.realtime.session.support import append, running_session, session_services, until
from tests.support.openai_events import validate_server_event


@pytest.fixture(scope="module")
async def services() -> AsyncIterator[SessionServices]:
    async with session_services(SessionSettings()) as recording:
        sim = SimEngine(SimParams(reasoning_tokens=5, answer_tokens=5))
        await sim.start()
        try:
            yield replace(recording, engine=sim)
        finally:
            await sim.aclose()


async def commit_a_turn(session: Any, sink: Any, transcription: dict[str, Any] | None) -> None:
    audio: dict[str, Any] = {"input": {"turn_detection": None, "transcription": transcription}}
    update = {"type": "session.update", "session": {"type": "realtime", "audio": audio}}
    hand_over(session, json.dumps(update))
    await append(session, synthesize("What is the weather like?", 24_000))
    hand_over(session, json.dumps({"type": "input_audio_buffer.commit"}))
    hand_over(session, json.dumps({"type": "response.create"}))
    await until(lambda: any(e["type"] == "response.done" for e in sink.events), timeout_s=20)


async def test_a_committed_turn_is_transcribed_in_deltas_then_completed(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        await commit_a_turn(session, sink, {"model": "step-audio-r1", "language": "en"})
        kind = "conversation.item.input_audio_transcription.completed"
        await until(lambda: any(e["type"] == kind for e in sink.events), timeout_s=20)
        item = session.conversation.items[0]
    kinds = [e["type"] for e in sink.events]
    delta = kinds.index("conversation.item.input_audio_transcription.delta")
    assert delta < kinds.index(kind)
    completed = next(e for e in sink.events if e["type"] == kind)
    assert completed["item_id"] == item.id and "simulated transcript" in completed["transcript"]
    assert item.transcript == completed["transcript"]
    for event in sink.events:
        validate_server_event(event)


async def test_without_transcription_configured_no_transcript_is_made(
    services: SessionServices,
) -> None:
    async with running_session(services) as (_, sink):
        await commit_a_turn(session=_, sink=sink, transcription=None)
    assert not [e for e in sink.events if "input_audio_transcription" in e["type"]]


async def test_a_transcription_session_transcribes_turns_and_makes_no_replies(
    services: SessionServices,
) -> None:
    async with running_session(services) as (session, sink):
        audio_input = {
            "transcription": {"model": "step-audio-r1", "language": "en"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 300},
        }
        session_patch = {"type": "transcription", "audio": {"input": audio_input}}
        update = {"type": "session.update", "session": session_patch}
        hand_over(session, json.dumps(update))
        await append(session, silence(0.3, 24_000))
        await append(session, synthesize("Please take a note.", 24_000))
        await append(session, silence(1.0, 24_000))
        kind = "conversation.item.input_audio_transcription.completed"
        await until(lambda: any(e["type"] == kind for e in sink.events), timeout_s=20)
        hand_over(session, json.dumps({"type": "response.create", "event_id": "r"}))
        await until(lambda: any(e["type"] == "error" for e in sink.events))
    kinds = [e["type"] for e in sink.events]
    assert "input_audio_buffer.committed" in kinds and "response.created" not in kinds
    updated = next(e for e in sink.events if e["type"] == "session.updated")
    assert updated["session"]["type"] == "transcription"
    assert next(e for e in sink.events if e["type"] == "error")["error"]["event_id"] == "r"
    for event in sink.events:
        validate_server_event(event)
