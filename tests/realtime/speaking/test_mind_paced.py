"""Mind-Paced Speaking (mps, speak-first) scheduling, against the sim engine at fast timings."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
from collections.abc import AsyncGenerator, Callable

import pytest

from realtime.engines.base import EngineError, EngineEvent, EngineRequest, EngineUsage
from realtime.speaking.base import ReasoningText, ReplyText, SpeakingParams
from realtime.speaking.mind_paced import MindPacedPolicy
from realtime.telemetry.timings import TurnTimings
from tests.realtime.speaking.support import (
    FAST,
    DelegatingSession,
    FakeGauge,
    RecordingSession,
    StreamRecord,
    conversation,
    harness,
    run_turn,
    words,
)

TC, TR = 40, 8
PACING = SpeakingParams(formulation_tokens=TC, articulation_tokens=TR)
WAIT_S = 10.0


def prefix_parts(record: StreamRecord) -> tuple[str, str]:
    """(reasoning, reply) an articulation request continues, checking its reasoning is closed."""
    continuation = record.request.continuation
    assert continuation is not None and continuation.reasoning_closed
    return continuation.reasoning, continuation.reply


async def until(session: RecordingSession, condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        await session.wait_for(condition)


async def test_the_reply_is_spoken_in_order_while_the_reasoning_goes_on() -> None:
    h = harness()
    out = await run_turn(MindPacedPolicy(), h, PACING)

    assert out.reply == h.plan.answer_text
    assert out.reasoning == h.plan.reasoning_text
    kinds = [type(event) for event in out.events]
    first_reply = kinds.index(ReplyText)
    assert ReasoningText in kinds[first_reply:]  # reasoning went on after the first words
    usage = out.events[-1]
    assert isinstance(usage, EngineUsage)
    assert usage.reasoning_tokens == len(h.plan.reasoning)
    assert usage.completion_tokens >= len(h.plan.reasoning) + len(h.plan.answer)
    assert usage.cached_prompt_tokens > 0  # articulations reuse the formulation's KV


async def test_no_word_is_spoken_before_the_first_tc_reasoning_tokens() -> None:
    h = harness()
    out = await run_turn(MindPacedPolicy(), h, PACING)

    kinds = [type(event) for event in out.events]
    assert kinds[: kinds.index(ReplyText)].count(ReasoningText) >= TC


async def test_an_articulation_follows_every_tc_reasoning_tokens_and_writes_at_most_tr() -> None:
    h = harness()
    await run_turn(MindPacedPolicy(), h, PACING)

    articulations = h.session.articulations()
    *intermediate, final = articulations
    assert len(intermediate) >= 2
    counts = [len(words(prefix_parts(record)[0])) for record in articulations]
    assert counts[0] >= TC
    for before, after in itertools.pairwise(counts[:-1]):
        assert after >= before + TC
    for record in intermediate:
        assert record.request.max_tokens == TR
        assert record.answer_tokens <= TR
    assert final.request.max_tokens is None
    assert counts[-1] == len(h.plan.reasoning)


async def test_an_articulation_continues_the_reasoning_so_far_and_the_reply_so_far() -> None:
    h = harness()
    await run_turn(MindPacedPolicy(), h, PACING)

    spoken = ""
    for record in h.session.articulations():
        reasoning, reply = prefix_parts(record)
        n = len(words(reasoning))
        assert reasoning == "".join(h.plan.reasoning[:n]).lstrip()
        assert reply == spoken  # exactly what the earlier articulations wrote
        assert record.request.reasoning_budget is None
        spoken += "".join(record.answer_text)
    assert spoken == h.plan.answer_text


async def test_formulation_and_articulation_run_at_the_same_time() -> None:
    h = harness()
    out = await run_turn(MindPacedPolicy(), h, PACING)

    [formulation] = h.session.formulations()
    assert formulation.ended_at is not None
    overlapping = [
        record
        for record in h.session.articulations()
        if record.ended_at is not None and record.ended_at < formulation.ended_at
    ]
    assert overlapping  # whole articulations ran inside the formulation stream
    assert out.first_reply_at is not None and out.first_reply_at < formulation.ended_at


async def test_articulation_waits_while_the_buffered_reply_audio_is_at_the_bound() -> None:
    h = harness()
    bound = PACING.max_buffered_audio_ms
    gauge = FakeGauge(buffered_ms=bound - 50.0)  # TTS still busy: the queue sits near the cap
    turn = asyncio.create_task(run_turn(MindPacedPolicy(), h, PACING, gauge))
    try:
        await until(h.session, lambda: bool(h.session.formulations()))
        [formulation] = h.session.formulations()
        await until(h.session, lambda: formulation.ended_at is not None)
        await asyncio.sleep(0.05)
        assert h.session.articulations() == []  # reasoning is over, yet nothing was articulated
        assert gauge.waits and max(gauge.waits) <= bound

        await gauge.set(0.0)
        out = await asyncio.wait_for(turn, WAIT_S)
    finally:
        turn.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await turn
    assert len(h.session.articulations()) == 1  # one final articulation, once below the bound
    assert out.reply == h.plan.answer_text


async def test_closing_the_policy_closes_both_engine_streams() -> None:
    h = harness()
    events = MindPacedPolicy().run(
        h.session,
        h.request,
        TurnTimings(),
        FakeGauge(),
        dataclasses.replace(PACING, articulation_tokens=40),
    )
    async with asyncio.timeout(WAIT_S):
        async for event in events:
            if isinstance(event, ReplyText):
                break
    assert h.session.open_streams == 2  # formulation and articulation both running
    await events.aclose()

    assert h.session.open_streams == 0
    assert h.engine.open_streams == 0 and h.engine.decoding == 0
    for record in h.session.records:  # closed where they were, not run to their end
        assert record.reasoning_tokens + record.answer_tokens < len(h.plan.reasoning)


async def test_a_barge_in_cancelling_the_turn_closes_both_engine_streams() -> None:
    h = harness()
    first_words = asyncio.Event()

    async def consume() -> None:
        events = MindPacedPolicy().run(
            h.session, h.request, TurnTimings(), FakeGauge(),
            dataclasses.replace(PACING, articulation_tokens=40),
        )  # fmt: skip
        try:
            async for event in events:
                if isinstance(event, ReplyText):
                    first_words.set()
        finally:
            await events.aclose()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(first_words.wait(), WAIT_S)
    assert h.session.open_streams == 2
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task

    assert h.session.open_streams == 0
    assert h.engine.open_streams == 0
    [formulation] = h.session.formulations()
    assert formulation.reasoning_tokens < len(h.plan.reasoning)


async def test_the_reasoning_budget_ends_the_formulation_and_the_reply_still_completes() -> None:
    h = harness(request=EngineRequest(conversation(), reasoning_budget=50))
    out = await run_turn(MindPacedPolicy(), h, PACING)

    assert len(words(out.reasoning)) == 50
    [formulation] = h.session.formulations()
    assert formulation.answer_tokens <= 1  # closed once the engine went on to the answer
    final = h.session.articulations()[-1]
    assert len(words(prefix_parts(final)[0])) == 50
    assert out.reply == h.plan.answer_text


async def test_speak_first_articulates_before_any_reasoning_token() -> None:
    h = harness()
    out = await run_turn(MindPacedPolicy(speak_first=True), h, PACING)

    first = h.session.articulations()[0]
    assert prefix_parts(first) == ("", "")
    assert first.reasoning_before == ""
    assert first.request.max_tokens == TR
    later = [len(words(prefix_parts(r)[0])) for r in h.session.articulations()[1:-1]]
    assert later and later[0] >= TC
    assert out.reply == h.plan.answer_text


async def test_a_formulation_that_closes_its_reasoning_early_is_closed_there() -> None:
    h = harness(dataclasses.replace(FAST, reasoning_tokens=20))
    out = await run_turn(MindPacedPolicy(), h, PACING)

    [formulation] = h.session.formulations()
    assert formulation.reasoning_tokens == 20
    assert formulation.answer_tokens <= 1
    [final] = h.session.articulations()
    assert final.request.max_tokens is None
    assert len(words(prefix_parts(final)[0])) == 20
    assert out.reply == h.plan.answer_text


async def test_an_articulation_that_ends_early_leaves_the_reply_to_later_ones() -> None:
    h = harness(dataclasses.replace(FAST, answer_tokens=10))
    out = await run_turn(MindPacedPolicy(), h, PACING)

    articulations = h.session.articulations()
    assert any(record.answer_tokens < TR for record in articulations[:-1])
    assert articulations[-1].request.max_tokens is None  # the final one still ran
    assert out.reply == h.plan.answer_text  # every word once, none repeated


async def test_an_engine_failure_fails_the_turn_and_closes_every_stream() -> None:
    h = harness()
    h.session = RecordingSession(FailingArticulationSession(h.session), h.output)
    with pytest.raises(EngineError, match="articulation broke"):
        await run_turn(MindPacedPolicy(), h, PACING)
    assert h.engine.open_streams == 0


class FailingArticulationSession(DelegatingSession):
    """An engine whose second articulation request fails mid-stream."""

    def __init__(self, inner: RecordingSession) -> None:
        super().__init__(inner)
        self.articulations = 0

    def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        if request.continuation is None:
            return self.inner.stream(request)
        self.articulations += 1
        return self._failing(request) if self.articulations == 2 else self.inner.stream(request)

    async def _failing(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        async with contextlib.aclosing(self.inner.stream(request)) as stream:
            async for event in stream:
                yield event
                raise EngineError("articulation broke")


async def test_words_said_before_the_reasoning_is_over_are_commentary_the_rest_final() -> None:
    h = harness()
    out = await run_turn(MindPacedPolicy(speak_first=True), h, PACING)

    phases = [event.phase for event in out.events if isinstance(event, ReplyText)]
    assert phases[0] == "commentary"  # speak-first: before any reasoning token
    assert phases[-1] == "final_answer"  # the final articulation sees all the reasoning
    assert phases == sorted(phases)  # commentary only ever before the final answer


async def test_a_reply_that_only_starts_after_the_reasoning_is_all_final_answer() -> None:
    h = harness(dataclasses.replace(FAST, reasoning_tokens=20))
    out = await run_turn(MindPacedPolicy(), h, PACING)

    phases = {event.phase for event in out.events if isinstance(event, ReplyText)}
    assert phases == {"final_answer"}
