"""The after-think baseline: speak once the reasoning block has closed; respect the budget."""

from __future__ import annotations

from realtime.engines.base import EngineRequest, EngineUsage
from realtime.speaking.after_think import AfterThinkPolicy
from realtime.speaking.base import ReasoningText, ReplyText, SpeakingParams
from realtime.speaking.continuation import articulation_prefix
from tests.realtime.speaking.support import (
    BudgetIgnoringSession,
    RecordingSession,
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


async def test_an_engine_that_spends_the_budget_needs_no_second_request() -> None:
    h = harness(request=EngineRequest(conversation(), reasoning_budget=30))
    out = await run_turn(AfterThinkPolicy(), h, PARAMS)

    assert len(words(out.reasoning)) == 30
    assert out.reply == h.plan.answer_text
    assert len(h.session.records) == 1


async def test_the_budget_is_kept_even_when_the_engine_ignores_it() -> None:
    h = harness(request=EngineRequest(conversation(), reasoning_budget=30))
    h.session = RecordingSession(BudgetIgnoringSession(h.session), h.output)
    out = await run_turn(AfterThinkPolicy(), h, PARAMS)

    assert len(words(out.reasoning)) == 30
    first, answer = h.session.records
    assert first.ended_at is not None and first.reasoning_tokens == 31  # closed at once
    assert answer.request.assistant_prefix == articulation_prefix(out.reasoning, "")
    assert out.reply == h.plan.answer_text
    assert h.engine.open_streams == 0
