"""The baseline policy: speak the answer once the reasoning block has closed.

The reasoning budget is enforced by ``realtime/engines/budget.py``: once it is spent the
reasoning block is closed and the answer follows. Function calls the model makes in its
answer pass through to the responder; reply text before a call is spoken, the call is not.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator

from realtime.engines.base import (
    AnswerDelta,
    EngineRequest,
    EngineSession,
    ReasoningDelta,
)
from realtime.engines.budget import stream_within_budget
from realtime.speaking.base import (
    PlaybackGauge,
    ReasoningText,
    ReplyText,
    SpeakEvent,
    SpeakingParams,
)
from realtime.speaking.continuation import ReplyJoiner
from realtime.telemetry.timings import TurnTimings


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
        reply = ReplyJoiner()
        timings.mark("engine_request_sent")
        async with contextlib.aclosing(stream_within_budget(engine, request)) as stream:
            async for event in stream:
                if isinstance(event, ReasoningDelta):
                    timings.mark("first_reasoning_token")
                    yield ReasoningText(event.text)
                elif isinstance(event, AnswerDelta):
                    timings.mark("first_answer_token")
                    if text := reply.add(event.text, event.tokens):
                        yield ReplyText(text)
                else:
                    yield event
