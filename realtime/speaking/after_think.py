"""The baseline policy: speak the answer once the reasoning block has closed."""

from __future__ import annotations

from collections.abc import AsyncGenerator

from realtime.engines.base import (
    AnswerDelta,
    EngineRequest,
    EngineSession,
    ReasoningDelta,
)
from realtime.session.timings import TurnTimings
from realtime.speaking.base import PlaybackGauge, ReasoningText, ReplyText, SpeakEvent


class AfterThinkPolicy:
    name = "after-think"

    async def run(
        self,
        engine: EngineSession,
        request: EngineRequest,
        timings: TurnTimings,
        playback: PlaybackGauge,
    ) -> AsyncGenerator[SpeakEvent, None]:
        timings.mark("engine_request_sent")
        stream = engine.stream(request)
        try:
            async for event in stream:
                if isinstance(event, ReasoningDelta):
                    timings.mark("first_reasoning_token")
                    yield ReasoningText(event.text)
                elif isinstance(event, AnswerDelta):
                    timings.mark("first_answer_token")
                    yield ReplyText(event.text)
                else:
                    yield event
        finally:
            await stream.aclose()
