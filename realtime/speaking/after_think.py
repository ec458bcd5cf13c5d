"""The baseline policy: speak the answer once the reasoning block has closed.

The reasoning budget (``EngineRequest.reasoning_budget``) is the engine's to enforce: it
closes the reasoning block once the budget is spent and goes on with the answer. Should an
engine stream more reasoning than the budget allows anyway, this policy closes that stream
and asks for the answer with a continuation request whose assistant prefix closes the
reasoning block (``<think>`` + the reasoning so far + ``</think>``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import AsyncGenerator

from realtime.engines.base import (
    AnswerDelta,
    EngineRequest,
    EngineSession,
    EngineUsage,
    ReasoningDelta,
)
from realtime.session.timings import TurnTimings
from realtime.speaking.base import (
    PlaybackGauge,
    ReasoningText,
    ReplyText,
    SpeakEvent,
    SpeakingParams,
)
from realtime.speaking.continuation import ReplyJoiner, add_usage, articulation_prefix


class AfterThinkPolicy:
    name = "after-think"

    async def run(
        self,
        engine: EngineSession,
        request: EngineRequest,
        timings: TurnTimings,
        playback: PlaybackGauge,
        params: SpeakingParams | None = None,
    ) -> AsyncGenerator[SpeakEvent, None]:
        budget = request.reasoning_budget
        reasoning: list[str] = []
        reasoning_tokens = 0
        over_budget = False
        reply = ReplyJoiner()
        usage: EngineUsage | None = None
        timings.mark("engine_request_sent")
        async with contextlib.aclosing(engine.stream(request)) as stream:
            async for event in stream:
                if isinstance(event, ReasoningDelta):
                    if budget is not None and reasoning_tokens + event.tokens > budget:
                        over_budget = True
                        break
                    reasoning_tokens += event.tokens
                    reasoning.append(event.text)
                    timings.mark("first_reasoning_token")
                    yield ReasoningText(event.text)
                elif isinstance(event, AnswerDelta):
                    timings.mark("first_answer_token")
                    if text := reply.add(event.text, event.tokens):
                        yield ReplyText(text)
                elif isinstance(event, EngineUsage):
                    usage = add_usage(usage, event)
                else:
                    yield event
        if over_budget:
            if usage is None:
                usage = EngineUsage(
                    completion_tokens=reasoning_tokens, reasoning_tokens=reasoning_tokens
                )
            remaining = None
            if request.max_tokens is not None:
                remaining = max(1, request.max_tokens - reasoning_tokens)
            answer = dataclasses.replace(
                request,
                assistant_prefix=articulation_prefix("".join(reasoning), ""),
                max_tokens=remaining,
                reasoning_budget=None,
            )
            async with contextlib.aclosing(engine.stream(answer)) as stream:
                async for event in stream:
                    if isinstance(event, AnswerDelta):
                        timings.mark("first_answer_token")
                        if text := reply.add(event.text, event.tokens):
                            yield ReplyText(text)
                    elif isinstance(event, EngineUsage):
                        usage = add_usage(usage, event)
        if usage is not None:
            yield usage
