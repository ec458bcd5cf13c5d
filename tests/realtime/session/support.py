"""In-process session test doubles: an engine that records its requests, a sink that records
events, and helpers that feed audio and wait for the session's own tasks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np

from benchmarks.harness.recording_engine import RecordingEngine
from realtime.protocol.openai_render import render
from realtime.session.outbox import AudioFrame, EventMessage, Outgoing
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.telemetry.metrics import ServiceMetrics
from realtime.transports.client_input import hand_over
from realtime.turns.silero import SileroVadModel
from realtime.turns.vad import VadBatcher
from tokenizer.pcm import pcm16_to_base64
from tts.espeak import EspeakTts


class RecordingSink:
    """The session's events as the WebSocket would send them."""

    name = "test"

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.closed_with: tuple[int, str] | None = None

    async def deliver(self, item: Outgoing) -> None:
        if isinstance(item, EventMessage):
            self.events.append(render(item.event))
        else:
            assert isinstance(item, AudioFrame)

    async def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)


async def manual_turns(session: Session) -> None:
    """Turn detection off: turns end when the client commits them."""
    update = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
    }
    hand_over(session, json.dumps(update))


async def append(session: Session, pcm: np.ndarray) -> None:
    """One ``input_audio_buffer.append`` of ``pcm``."""
    message = {"type": "input_audio_buffer.append", "audio": pcm16_to_base64(pcm)}
    hand_over(session, json.dumps(message))


async def feed(session: Session, pcm: np.ndarray, frame_samples: int = 480) -> None:
    """``pcm`` in appends of ``frame_samples``, as fast as the session takes them."""
    for start in range(0, len(pcm), frame_samples):
        await append(session, pcm[start : start + frame_samples])
        await asyncio.sleep(0)


async def until(
    condition: Callable[[], bool], timeout_s: float = 20.0, poll_s: float = 0.01
) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - state changes in the session's own tasks
            await asyncio.sleep(poll_s)


@contextlib.asynccontextmanager
async def session_services(settings: SessionSettings) -> AsyncIterator[SessionServices]:
    """Real VAD and espeak-ng TTS around a ``RecordingEngine``."""
    vad = VadBatcher(SileroVadModel())
    await vad.start()
    tts = EspeakTts()
    try:
        yield SessionServices(
            engine=RecordingEngine(),
            tts=tts,
            vad=vad,
            policies={"after-think": AfterThinkPolicy()},
            metrics=ServiceMetrics("recording", simulated=False),
            settings=settings,
        )
    finally:
        await tts.aclose()
        await vad.aclose()


@contextlib.asynccontextmanager
async def running_session(
    services: SessionServices,
) -> AsyncIterator[tuple[Session, RecordingSink]]:
    """A started session on a ``RecordingSink``, closed afterwards."""
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    try:
        yield session, sink
    finally:
        await session.close()


async def update_input_audio(
    session: Session, sink: RecordingSink, audio_input: dict[str, Any]
) -> dict[str, Any]:
    """``session.update`` of ``audio.input``; the ``session.updated`` (or ``error``) it got."""
    message = {"type": "session.update", "session": {"audio": {"input": audio_input}}}
    hand_over(session, json.dumps(message))
    await until(lambda: any(e["type"] in ("session.updated", "error") for e in sink.events))
    event: dict[str, Any] = sink.events[-1]
    sink.events.clear()
    return event
