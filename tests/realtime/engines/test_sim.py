"""The sim engine: a simulator's plan, continuation, token arithmetic, cache and batching."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import numpy as np
import pytest

from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.base import AnswerDelta, EngineRequest, EngineUsage, ReasoningDelta
from realtime.engines.factory import EngineOptions, build_engine
from realtime.engines.sim import SimEngine, SimParams, SimSession
from realtime.engines.sim_text import plan_turn
from realtime.speaking.continuation import articulation_prefix
from tokenizer.chunking import audio_prompt_tokens_for_samples

FAST = SimParams(itl_ms=1.0, ttft_ms=1.0, reasoning_tokens=30, answer_tokens=20, length_jitter=0)
RATE = 16_000


def audio_conversation(*seconds: float, item_id: str = "item_a") -> Conversation:
    chunks = [np.zeros(round(s * RATE), np.int16) for s in seconds]
    return Conversation("", (UserAudioItem(item_id, chunks),))


async def collect(
    session: SimSession, request: EngineRequest
) -> tuple[list[ReasoningDelta], list[AnswerDelta], EngineUsage]:
    reasoning: list[ReasoningDelta] = []
    answer: list[AnswerDelta] = []
    usage: EngineUsage | None = None
    async with asyncio.timeout(10):
        async for event in session.stream(request):
            if isinstance(event, ReasoningDelta):
                assert not answer, "reasoning after the answer started"
                reasoning.append(event)
            elif isinstance(event, AnswerDelta):
                answer.append(event)
            elif isinstance(event, EngineUsage):
                usage = event
    assert usage is not None
    return reasoning, answer, usage


def text(deltas: list[ReasoningDelta] | list[AnswerDelta]) -> str:
    return "".join(delta.text for delta in deltas)


async def test_a_stream_is_the_planned_reasoning_then_the_planned_reply() -> None:
    engine = SimEngine(FAST)
    conversation = audio_conversation(2.0)
    reasoning, answer, usage = await collect(engine.open_session(), EngineRequest(conversation))

    plan = engine.plan(conversation)
    assert len(reasoning) == FAST.reasoning_tokens
    assert text(reasoning) == plan.reasoning_text
    assert text(answer) == plan.answer_text
    assert len(answer) >= FAST.answer_tokens and plan.answer_text.endswith(".")
    assert usage.reasoning_tokens == len(reasoning)
    assert usage.completion_tokens == len(reasoning) + 1 + len(answer)  # + the </think> step


def test_the_plan_depends_only_on_the_seed_and_the_conversation() -> None:
    def plan(seed: int, *ids: str) -> tuple[str, str]:
        made = plan_turn(
            seed=seed, instructions="", item_ids=ids, reasoning_tokens=50, answer_tokens=30,
            length_jitter=0.25,
        )  # fmt: skip
        return made.reasoning_text, made.answer_text

    assert plan(1, "item_a") == plan(1, "item_a")
    assert plan(1, "item_a") != plan(2, "item_a")
    assert plan(1, "item_a") != plan(1, "item_b")
    assert plan(1, "item_a") != plan(1, "item_a", "item_b")


async def test_the_reasoning_budget_closes_the_reasoning_and_the_reply_follows() -> None:
    engine = SimEngine(FAST)
    conversation = audio_conversation(1.0)
    request = EngineRequest(conversation, reasoning_budget=7)
    reasoning, answer, _ = await collect(engine.open_session(), request)

    assert len(reasoning) == 7
    assert text(answer) == engine.plan(conversation).answer_text


async def test_max_tokens_cuts_the_completion() -> None:
    engine = SimEngine(FAST)
    request = EngineRequest(audio_conversation(1.0), max_tokens=12)
    reasoning, answer, usage = await collect(engine.open_session(), request)

    assert len(reasoning) == 12 and not answer
    assert usage.completion_tokens == 12


@pytest.mark.parametrize("reply_ends_with_space", [False, True])
async def test_a_prefix_that_closed_the_reasoning_continues_the_reply_after_its_words(
    reply_ends_with_space: bool,
) -> None:
    engine = SimEngine(FAST)
    conversation = audio_conversation(1.0)
    plan = engine.plan(conversation)
    said = "".join(plan.answer[:5]) + (" " if reply_ends_with_space else "")
    request = EngineRequest(
        conversation, assistant_prefix=articulation_prefix(plan.reasoning_text[:40], said)
    )
    reasoning, answer, _ = await collect(engine.open_session(), request)

    assert not reasoning
    assert said + text(answer) == plan.answer_text  # one space between words, no more
    assert answer[0].text.startswith(" ") != reply_ends_with_space


async def test_a_prefix_inside_the_reasoning_continues_the_reasoning() -> None:
    engine = SimEngine(FAST)
    conversation = audio_conversation(1.0)
    plan = engine.plan(conversation)
    thought = "".join(plan.reasoning[:10])
    request = EngineRequest(conversation, assistant_prefix="<think>\n" + thought)
    reasoning, answer, _ = await collect(engine.open_session(), request)

    assert thought + text(reasoning) == plan.reasoning_text
    assert text(answer) == plan.answer_text


async def test_audio_costs_the_step_audio_prompt_tokens() -> None:
    engine = SimEngine(FAST)
    _, _, ten_seconds = await collect(
        engine.open_session(), EngineRequest(audio_conversation(10.0))
    )
    _, _, two_seconds = await collect(engine.open_session(), EngineRequest(audio_conversation(2.0)))

    expected = audio_prompt_tokens_for_samples(10 * RATE) - audio_prompt_tokens_for_samples(
        2 * RATE
    )
    assert ten_seconds.prompt_tokens - two_seconds.prompt_tokens == expected
    assert audio_prompt_tokens_for_samples(10 * RATE) == 127


async def test_prefill_while_listening_leaves_only_the_last_chunk_to_compute() -> None:
    engine = SimEngine(FAST)
    session = engine.open_session()
    final = audio_conversation(2.0, 2.0, 1.0)
    partial = dataclasses.replace(
        final,
        items=(UserAudioItem("item_a", final.items[0].chunks[:2], complete=False),),  # type: ignore[union-attr]
    )
    await session.prefill(EngineRequest(partial, max_tokens=1))
    _, _, usage = await collect(session, EngineRequest(final))
    _, _, cold = await collect(engine.open_session(), EngineRequest(final))

    closed_chunks = 3 + 2 * audio_prompt_tokens_for_samples(2 * RATE)  # header + two chunks
    assert cold.cached_prompt_tokens == 0
    assert usage.cached_prompt_tokens == closed_chunks // 16 * 16
    assert usage.prompt_tokens - usage.cached_prompt_tokens < cold.prompt_tokens // 2


async def test_an_articulation_reuses_the_reasoning_a_formulation_stream_wrote() -> None:
    engine = SimEngine(FAST)
    session = engine.open_session()
    conversation = audio_conversation(2.0)
    plan = engine.plan(conversation)
    await collect(session, EngineRequest(conversation))
    prefix = articulation_prefix(plan.reasoning_text, "")
    _, _, usage = await collect(session, EngineRequest(conversation, assistant_prefix=prefix))

    assert usage.prompt_tokens - usage.cached_prompt_tokens <= 16  # the last, partial block
    assert usage.cached_prompt_tokens >= FAST.reasoning_tokens


def test_each_stream_decoding_at_once_adds_batch_slowdown_to_the_token_interval() -> None:
    params = SimParams(itl_ms=10.0, batch_slowdown=0.05)
    assert params.token_interval_s(1) == pytest.approx(0.010)
    assert params.token_interval_s(3) == pytest.approx(0.011)
    assert params.first_token_s(2000) == pytest.approx(params.ttft_ms / 1000 + 0.1)


async def test_streams_on_one_engine_decode_as_one_batch() -> None:
    engine = SimEngine(dataclasses.replace(FAST, itl_ms=3.0, reasoning_tokens=60))
    seen: list[int] = []

    async def run(item_id: str) -> None:
        session = engine.open_session()
        async for event in session.stream(EngineRequest(audio_conversation(1.0, item_id=item_id))):
            if isinstance(event, ReasoningDelta):
                seen.append(engine.decoding)

    async with asyncio.timeout(10):
        await asyncio.gather(run("item_a"), run("item_b"))
    assert max(seen) == 2
    assert engine.decoding == 0


async def test_closing_a_stream_midway_releases_it() -> None:
    engine = SimEngine(FAST)
    session = engine.open_session()
    stream = session.stream(EngineRequest(audio_conversation(1.0)))
    async with asyncio.timeout(10):
        async for event in stream:
            if isinstance(event, ReasoningDelta):
                break
    assert session.open_streams == 1 and engine.decoding == 1
    await stream.aclose()
    assert session.open_streams == 0 and engine.open_streams == 0 and engine.decoding == 0


async def test_the_engine_says_everywhere_that_it_is_simulated(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = build_engine(EngineOptions(name="sim"))
    assert engine.info.name == "sim" and engine.info.simulated
    assert "simulated" in engine.info.model
    with caplog.at_level(logging.WARNING, logger="realtime.engines.sim"):
        await engine.start()
    assert any(
        "SIMULATED" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records
    )
    await engine.aclose()
