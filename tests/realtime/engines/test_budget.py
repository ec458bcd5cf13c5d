"""The reasoning budget, kept in one place whatever the engine (here the sim, which ignores it)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator

import numpy as np

from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.base import (
    AnswerDelta,
    Continuation,
    EngineEvent,
    EngineRequest,
    EngineUsage,
    ReasoningDelta,
)
from realtime.engines.budget import stream_within_budget
from realtime.engines.sim import SimEngine, SimParams, SimSession

FAST = SimParams(itl_ms=1.0, ttft_ms=1.0, reasoning_tokens=30, answer_tokens=20, length_jitter=0)
CONVERSATION = Conversation("", (UserAudioItem("item_a", [np.zeros(16_000, np.int16)]),))


class Recording:
    """The sim engine, recording the requests it is sent."""

    def __init__(self, inner: SimSession) -> None:
        self.inner = inner
        self.requests: list[EngineRequest] = []

    def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        self.requests.append(request)
        return self.inner.stream(request)

    async def prefill(self, request: EngineRequest) -> None:
        await self.inner.prefill(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def run(
    request: EngineRequest, *, then_answer: bool = True
) -> tuple[list[EngineEvent], Recording]:
    engine = SimEngine(FAST)
    session = Recording(engine.open_session())
    async with asyncio.timeout(10):
        stream = stream_within_budget(session, request, then_answer=then_answer)
        async with contextlib.aclosing(stream) as events:
            out = [event async for event in events]
    assert engine.open_streams == 0
    return out, session


def text(events: list[EngineEvent], kind: type[ReasoningDelta] | type[AnswerDelta]) -> str:
    return "".join(e.text for e in events if isinstance(e, kind))


async def test_the_budget_closes_the_reasoning_and_a_continuation_writes_the_answer() -> None:
    events, session = await run(EngineRequest(CONVERSATION, reasoning_budget=7))
    plan = SimEngine(FAST).plan(CONVERSATION)

    reasoning = text(events, ReasoningDelta)
    assert reasoning == "".join(plan.reasoning[:7])
    assert text(events, AnswerDelta) == plan.answer_text
    _, answer = session.requests
    assert answer.continuation == Continuation(reasoning, "", reasoning_closed=True)
    assert answer.reasoning_budget is None
    usage = events[-1]
    assert isinstance(usage, EngineUsage) and usage.reasoning_tokens == 7


async def test_a_zero_budget_asks_for_the_answer_at_once() -> None:
    events, session = await run(EngineRequest(CONVERSATION, reasoning_budget=0))

    assert not text(events, ReasoningDelta)
    [only] = session.requests
    assert only.continuation == Continuation(reasoning_closed=True)


async def test_without_then_answer_the_stream_ends_at_the_budget() -> None:
    events, session = await run(EngineRequest(CONVERSATION, reasoning_budget=5), then_answer=False)

    assert len([e for e in events if isinstance(e, ReasoningDelta)]) == 5
    assert not text(events, AnswerDelta)
    assert len(session.requests) == 1


async def test_max_tokens_is_shared_by_the_reasoning_and_the_answer() -> None:
    events, session = await run(EngineRequest(CONVERSATION, reasoning_budget=6, max_tokens=10))

    assert session.requests[1].max_tokens == 4
    assert len([e for e in events if isinstance(e, AnswerDelta)]) == 4


async def test_a_request_that_starts_in_the_reply_is_not_budgeted() -> None:
    closed = Continuation("thought", reasoning_closed=True)
    events, session = await run(
        EngineRequest(CONVERSATION, reasoning_budget=0, continuation=closed)
    )
    assert len(session.requests) == 1
    assert text(events, AnswerDelta)
