"""Listen while thinking, in-process: the engine sees each closed chunk before the turn ends,
and the turn's final request extends exactly what was prefilled."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from realtime.conversation import UserAudioItem
from realtime.engines.base import AnswerDelta, EngineEvent, EngineInfo, EngineRequest
from realtime.server.metrics import ServiceMetrics
from realtime.session.outbox import AudioFrame, EventMessage, Outgoing
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.turns.silero import SileroVadModel
from realtime.turns.vad import VadBatcher
from tests.support.speech import silence, synthesize
from tokenizer.pcm import pcm16_to_base64
from tts.espeak import EspeakTts

RATE = 24_000
SPEECH = "One two three four five six seven eight nine ten, and then some more words."


@dataclass
class RecordingEngineSession:
    prefills: list[EngineRequest] = field(default_factory=list)
    streams: list[EngineRequest] = field(default_factory=list)

    async def prefill(self, request: EngineRequest) -> None:
        self.prefills.append(request)

    async def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.streams.append(request)
        yield AnswerDelta("Okay.")

    async def aclose(self) -> None:
        pass


@dataclass
class RecordingEngine:
    session: RecordingEngineSession = field(default_factory=RecordingEngineSession)
    info: EngineInfo = field(default_factory=lambda: EngineInfo("recording", "recording"))

    async def start(self) -> None:
        pass

    async def aclose(self) -> None:
        pass

    def open_session(self) -> RecordingEngineSession:
        return self.session


class RecordingSink:
    name = "test"

    def __init__(self) -> None:
        self.events: list[dict] = []

    async def deliver(self, item: Outgoing) -> None:
        if isinstance(item, EventMessage):
            self.events.append(item.event)
        else:
            assert isinstance(item, AudioFrame)


@pytest.fixture
async def services() -> AsyncIterator[SessionServices]:
    vad = VadBatcher(SileroVadModel())
    await vad.start()
    tts = EspeakTts()
    engine = RecordingEngine()
    yield SessionServices(
        engine=engine,
        tts=tts,
        vad=vad,
        policies={"after-think": AfterThinkPolicy()},
        metrics=ServiceMetrics("recording", simulated=False),
        settings=SessionSettings(prefill_chunk_s=1.0, audio_lead_ms=10_000),
    )
    await tts.aclose()
    await vad.aclose()


async def feed(session: Session, pcm: np.ndarray) -> None:
    for start in range(0, len(pcm), 480):
        piece = pcm[start : start + 480]
        await session.handle_message(
            json.dumps({"type": "input_audio_buffer.append", "audio": pcm16_to_base64(piece)})
        )
        await asyncio.sleep(0)


async def until(condition, timeout_s: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - state changes in the session's own tasks
            await asyncio.sleep(0.01)


def last_user_audio(request: EngineRequest) -> UserAudioItem:
    item = request.conversation.last_user_item()
    assert isinstance(item, UserAudioItem)
    return item


async def test_the_final_request_extends_the_chunks_prefilled_while_the_user_spoke(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    await feed(session, np.concatenate([synthesize(SPEECH, RATE), silence(1.2, RATE)]))
    await until(lambda: engine.streams)
    await session.close()
    assert engine.prefills, "closed chunks should be prefilled before the turn ends"
    prefilled = last_user_audio(engine.prefills[-1])
    final = last_user_audio(engine.streams[0])
    assert not prefilled.complete and final.complete
    assert len(final.chunks) == len(prefilled.chunks) + 1
    for before, after in zip(prefilled.chunks, final.chunks, strict=False):
        assert np.array_equal(before, after)
    assert all(len(chunk) <= 25 * 16_000 for chunk in final.chunks)


async def test_a_manual_commit_during_speech_keeps_the_prefilled_chunks(
    services: SessionServices,
) -> None:
    engine = services.engine.open_session()
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    speech = synthesize(SPEECH, RATE)
    await feed(session, speech)
    await until(lambda: engine.prefills)
    await session.handle_message(json.dumps({"type": "input_audio_buffer.commit"}))
    await session.handle_message(json.dumps({"type": "response.create"}))
    await until(lambda: engine.streams)
    await session.close()
    prefilled = last_user_audio(engine.prefills[-1])
    final = last_user_audio(engine.streams[0])
    assert len(final.chunks) >= len(prefilled.chunks)
    for before, after in zip(prefilled.chunks, final.chunks, strict=False):
        assert np.array_equal(before, after)
    assert "input_audio_buffer.committed" in [event["type"] for event in sink.events]
