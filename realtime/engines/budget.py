"""The reasoning budget, enforced in one place for every engine and speaking policy.

``EngineRequest.reasoning_budget`` caps the reasoning tokens of a request that starts in the
reasoning block. Once the model has written that many, its stream is closed and (unless the
caller only wants the reasoning) a second request continues the assistant message with the
reasoning block closed, for the answer. A budget of 0 asks for the answer at once. Engines
themselves never look at the budget: they only render a ``Continuation``.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator

from realtime.engines.base import (
    AnswerDelta,
    Continuation,
    EngineEvent,
    EngineRequest,
    EngineSession,
    EngineUsage,
    ReasoningDelta,
    UsageTally,
)


async def stream_within_budget(
    engine: EngineSession, request: EngineRequest, *, then_answer: bool = True
) -> AsyncGenerator[EngineEvent, None]:
    """``engine.stream(request)`` with its reasoning cut at the budget.

    With ``then_answer`` the answer follows the cut (from a continuation request); without
    it the stream simply ends there (Mind-Paced Speaking's formulation stream wants only the
    reasoning). Usage is one ``EngineUsage`` at the end, summed over both requests; a
    stream closed at the budget counts the tokens seen of it.
    """
    budget = request.reasoning_budget
    if budget is None or not request.starts_in_reasoning:
        async with contextlib.aclosing(engine.stream(request)) as stream:
            async for event in stream:
                yield event
        return
    reasoning: list[str] = []
    reasoning_tokens = 0
    spent = budget <= 0
    usage = UsageTally()
    if not spent:
        async with contextlib.aclosing(engine.stream(request)) as stream:
            async for event in stream:
                if isinstance(event, ReasoningDelta):
                    if reasoning_tokens + event.tokens > budget:
                        spent = True
                        break
                    reasoning_tokens += event.tokens
                    reasoning.append(event.text)
                    yield event
                    if reasoning_tokens >= budget:
                        spent = True
                        break
                elif isinstance(event, EngineUsage):
                    usage.add(event)
                else:
                    yield event
        if spent:
            usage.add(
                EngineUsage(completion_tokens=reasoning_tokens, reasoning_tokens=reasoning_tokens)
            )
    if spent and then_answer:
        answer = _answer(engine, request, "".join(reasoning), reasoning_tokens)
        async for event in usage.relay(answer):
            yield event
    if usage.total is not None:
        yield usage.total


async def _answer(
    engine: EngineSession, request: EngineRequest, reasoning: str, reasoning_tokens: int
) -> AsyncGenerator[EngineEvent, None]:
    """The answer after the reasoning cut at the budget; ``max_tokens`` counts both parts."""
    remaining = None
    if request.max_tokens is not None:
        remaining = request.max_tokens - reasoning_tokens
        if remaining <= 0:
            return
    before = request.continuation.reasoning if request.continuation is not None else ""
    answer = dataclasses.replace(
        request,
        continuation=Continuation(reasoning=before + reasoning, reasoning_closed=True),
        max_tokens=remaining,
        reasoning_budget=None,
    )
    seen = 0
    reported = False
    async with contextlib.aclosing(engine.stream(answer)) as stream:
        async for event in stream:
            if isinstance(event, AnswerDelta):
                seen += event.tokens
            reported = reported or isinstance(event, EngineUsage)
            yield event
    if not reported:
        yield EngineUsage(completion_tokens=seen)
