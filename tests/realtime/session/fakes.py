"""Doubles for driving a response without a service: a scripted engine, a TTS that speaks
each text delta as one short segment, and an outbox whose output is recorded as it leaves."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from benchmarks.harness.recording_engine import RecordingEngine
from realtime import events as ev
from realtime.engines.base import (
    EngineCapabilities,
    EngineEvent,
    EngineInfo,
    EngineRequest,
)
from realtime.session.outbox import AudioFrame, Closing, EventMessage, Outbox, OutboxClosed
from tts.base import SpeechChunk, TtsError

TTS_RATE = 24_000
SEGMENT_MS = 60


@dataclass
class ScriptedEngineSession:
    """Streams ``script``; waits at each ``PAUSE`` until ``go`` is set (a reply in flight)."""

    script: Sequence[EngineEvent | str] = ()
    go: asyncio.Event = field(default_factory=asyncio.Event)
    requests: list[EngineRequest] = field(default_factory=list)
    failure: Exception | None = None

    async def prefill(self, request: EngineRequest) -> None:
        pass

    async def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.requests.append(request)
        for step in self.script:
            if step == PAUSE:
                await self.go.wait()
            elif not isinstance(step, str):
                yield step
        if self.failure is not None:
            raise self.failure

    def transcribe(self, item: Any, hints: Any) -> AsyncGenerator[str, None]:
        raise NotImplementedError("these tests do not transcribe")

    async def aclose(self) -> None:
        pass


PAUSE = "pause"


@dataclass
class ScriptedEngine(RecordingEngine):
    """The recording engine's service side, able to call tools, around a scripted session."""

    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(tools=True)
    info: EngineInfo = field(default_factory=lambda: EngineInfo("scripted", "scripted-model"))


class SegmentTts:
    """Each text delta is one segment: ``SEGMENT_MS`` of a tone, in two chunks. With
    ``fail_after`` segments spoken, the next one raises ``TtsError``."""

    name = "segments"
    sample_rate = TTS_RATE

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after
        self.spoken: list[str] = []

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        return self._speak(text)

    async def _speak(self, text: AsyncIterable[str]) -> AsyncGenerator[SpeechChunk, None]:
        half = np.full(TTS_RATE * SEGMENT_MS // 2000, 1000, np.int16)
        index = 0
        async for delta in text:
            if self.fail_after is not None and index >= self.fail_after:
                raise TtsError("the test TTS gave up")
            segment = delta.strip()
            self.spoken.append(segment)
            yield SpeechChunk(half, index, segment)
            yield SpeechChunk(half, index, segment, segment_end=True)
            index += 1

    async def aclose(self) -> None:
        pass


@dataclass
class Sent:
    """What left the outbox, in order: typed events and audio frames."""

    items: list[ev.ServerEvent | AudioFrame] = field(default_factory=list)

    @property
    def events(self) -> list[ev.ServerEvent]:
        return [item for item in self.items if not isinstance(item, AudioFrame)]

    def of(self, kind: type[Any]) -> list[Any]:
        return [item for item in self.items if isinstance(item, kind)]

    def kinds(self) -> list[str]:
        return [type(item).__name__ for item in self.items]


@contextlib.asynccontextmanager
async def drained(outbox: Outbox) -> AsyncIterator[Sent]:
    """Everything leaving ``outbox`` while inside, recorded (its audio is not paced: give it a
    long lead)."""
    sent = Sent()

    async def drain() -> None:
        with contextlib.suppress(OutboxClosed):
            while True:
                item = await outbox.get()
                if isinstance(item, Closing):
                    return
                sent.items.append(item.event if isinstance(item, EventMessage) else item)

    task = asyncio.create_task(drain())
    try:
        yield sent
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def until(condition: Any, timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():  # noqa: ASYNC110 - the state changes in other tasks
            await asyncio.sleep(0.005)


async def settle(rounds: int = 20) -> None:
    """Let the other tasks run until they are blocked."""
    for _ in range(rounds):
        await asyncio.sleep(0)
