"""Test helpers for speaking policies: a recording engine session and a controllable gauge."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field

import numpy as np

from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.base import (
    AnswerDelta,
    EngineEvent,
    EngineRequest,
    EngineSession,
    ReasoningDelta,
)
from realtime.engines.sim import SimEngine, SimParams
from realtime.engines.sim_text import TurnPlan
from realtime.speaking.base import (
    ReasoningText,
    ReplyText,
    SpeakEvent,
    SpeakingParams,
    SpeakingPolicy,
)
from realtime.telemetry.timings import TurnTimings

FAST = SimParams(itl_ms=2.0, ttft_ms=2.0, reasoning_tokens=200, answer_tokens=60, length_jitter=0.0)
TURN_TIMEOUT_S = 20.0


def conversation(item_id: str = "item_test") -> Conversation:
    """One user turn of 3 s of (silent) audio."""
    return Conversation("", (UserAudioItem(item_id, [np.zeros(48_000, np.int16)]),))


@dataclass
class StreamRecord:
    """One engine request a policy made, and what came of it."""

    request: EngineRequest
    started_at: float
    ended_at: float | None = None
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    answer_text: list[str] = field(default_factory=list)
    reply_before: str = ""  # the reply the policy had yielded when it sent this request
    reasoning_before: str = ""  # the reasoning the policy had yielded when it sent this request

    @property
    def is_articulation(self) -> bool:
        return self.request.continuation is not None


class RecordingSession:
    """An engine session that records every stream it serves (and whether it was closed)."""

    def __init__(self, inner: EngineSession, yielded: PolicyOutput | None = None) -> None:
        self.inner = inner
        self.records: list[StreamRecord] = []
        self.yielded = yielded or PolicyOutput()
        self._changed = asyncio.Event()

    async def wait_for(self, condition: Callable[[], bool]) -> None:
        """Until ``condition()`` holds, re-checked whenever a stream starts or ends."""
        while not condition():
            self._changed.clear()
            await self._changed.wait()

    @property
    def open_streams(self) -> int:
        return sum(1 for record in self.records if record.ended_at is None)

    def articulations(self) -> list[StreamRecord]:
        return [record for record in self.records if record.is_articulation]

    def formulations(self) -> list[StreamRecord]:
        return [record for record in self.records if not record.is_articulation]

    async def prefill(self, request: EngineRequest) -> None:
        await self.inner.prefill(request)

    def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        return self._stream(request)

    async def _stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        record = StreamRecord(
            request,
            time.monotonic(),
            reply_before=self.yielded.reply,
            reasoning_before=self.yielded.reasoning,
        )
        self.records.append(record)
        self._changed.set()
        stream = self.inner.stream(request)
        try:
            async for event in stream:
                if isinstance(event, ReasoningDelta):
                    record.reasoning_tokens += event.tokens
                elif isinstance(event, AnswerDelta):
                    record.answer_tokens += event.tokens
                    record.answer_text.append(event.text)
                yield event
        finally:
            await stream.aclose()
            record.ended_at = time.monotonic()
            self._changed.set()

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class PolicyOutput:
    """What a policy yielded so far, in order."""

    events: list[SpeakEvent] = field(default_factory=list)
    first_reply_at: float | None = None

    @property
    def reply(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ReplyText))

    @property
    def reasoning(self) -> str:
        return "".join(e.text for e in self.events if isinstance(e, ReasoningText))

    def add(self, event: SpeakEvent) -> None:
        self.events.append(event)
        if isinstance(event, ReplyText) and self.first_reply_at is None:
            self.first_reply_at = time.monotonic()


class FakeGauge:
    """A playback gauge whose buffered audio the test sets."""

    def __init__(self, buffered_ms: float = 0.0) -> None:
        self._buffered_ms = buffered_ms
        self._changed = asyncio.Condition()
        self.waits: list[float] = []

    def buffered_ms(self) -> float:
        return self._buffered_ms

    async def set(self, buffered_ms: float) -> None:
        async with self._changed:
            self._buffered_ms = buffered_ms
            self._changed.notify_all()

    async def wait_buffered_below(self, ms: float) -> None:
        self.waits.append(ms)
        async with self._changed:
            await self._changed.wait_for(lambda: self._buffered_ms < ms)


@dataclass
class Harness:
    engine: SimEngine
    session: RecordingSession
    output: PolicyOutput
    plan: TurnPlan
    request: EngineRequest


def harness(params: SimParams = FAST, request: EngineRequest | None = None) -> Harness:
    engine = SimEngine(params)
    output = PolicyOutput()
    session = RecordingSession(engine.open_session(), output)
    request = request or EngineRequest(conversation())
    return Harness(engine, session, output, engine.plan(request.conversation), request)


async def run_turn(
    policy: SpeakingPolicy,
    h: Harness,
    params: SpeakingParams,
    gauge: FakeGauge | None = None,
    timings: TurnTimings | None = None,
) -> PolicyOutput:
    """Run the policy to the end of the turn (bounded in time)."""
    events = policy.run(
        h.session, h.request, timings or TurnTimings(), gauge or FakeGauge(), params
    )
    async with asyncio.timeout(TURN_TIMEOUT_S):
        try:
            async for event in events:
                h.output.add(event)
        finally:
            await events.aclose()
    return h.output


def words(text: str) -> list[str]:
    return text.split()


class DelegatingSession:
    """An engine session that hands every call to ``inner`` (override what a test changes)."""

    def __init__(self, inner: EngineSession) -> None:
        self.inner = inner

    def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        return self.inner.stream(request)

    async def prefill(self, request: EngineRequest) -> None:
        await self.inner.prefill(request)

    async def aclose(self) -> None:
        await self.inner.aclose()
