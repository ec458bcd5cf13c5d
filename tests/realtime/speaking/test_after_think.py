"""The after-think baseline: speak once the reasoning block has closed; respect the budget."""

from __future__ import annotations

from realtime.engines.base import Continuation, EngineRequest, EngineUsage
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import ReasoningText, ReplyText, SpeakingParams
from tests.realtime.speaking.support import (
    conversation,
    harness,
    run_turn,
    words,
)

PARAMS = SpeakingParams()


async def test_the_reply_starts_only_after_all_the_reasoning() -> None:
    h = harness()
    out = await run_turn(AfterThinkPolicy(), h, PARAMS)

    kinds = [type(event) for event in out.events]
    last_reasoning = len(kinds) - 1 - kinds[::-1].index(ReasoningText)
    assert last_reasoning < kinds.index(ReplyText)
    assert out.reasoning == h.plan.reasoning_text
    assert out.reply == h.plan.answer_text
    assert len(h.session.records) == 1
    assert isinstance(out.events[-1], EngineUsage)


async def test_a_spent_budget_closes_the_stream_and_asks_for_the_answer() -> None:
    h = harness(request=EngineRequest(conversation(), reasoning_budget=30))
    out = await run_turn(AfterThinkPolicy(), h, PARAMS)

    assert len(words(out.reasoning)) == 30
    first, answer = h.session.records
    assert first.ended_at is not None and first.reasoning_tokens == 30  # closed at once
    assert answer.request.continuation == Continuation(out.reasoning, "", reasoning_closed=True)
    assert answer.request.reasoning_budget is None
    assert out.reply == h.plan.answer_text
    assert h.engine.open_streams == 0
