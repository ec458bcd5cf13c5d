"""The sim engine: a simulator's plan, continuation, token arithmetic, cache and batching."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import numpy as np
import pytest

from realtime.conversation import (
    Conversation,
    FunctionCallItem,
    FunctionCallOutputItem,
    UserAudioItem,
)
from realtime.engines.base import (
    AnswerDelta,
    Continuation,
    EngineRequest,
    EngineUsage,
    ReasoningDelta,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from realtime.engines.factory import EngineOptions, build_engine
from realtime.engines.sim import SimEngine, SimParams, SimSession
from realtime.engines.sim_text import plan_turn
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


async def test_max_tokens_cuts_the_completion() -> None:
    engine = SimEngine(FAST)
    request = EngineRequest(audio_conversation(1.0), max_tokens=12)
    reasoning, answer, usage = await collect(engine.open_session(), request)

    assert len(reasoning) == 12 and not answer
    assert usage.completion_tokens == 12


@pytest.mark.parametrize("reply_ends_with_space", [False, True])
async def test_a_continuation_with_the_reasoning_closed_continues_the_reply_after_its_words(
    reply_ends_with_space: bool,
) -> None:
    engine = SimEngine(FAST)
    conversation = audio_conversation(1.0)
    plan = engine.plan(conversation)
    said = "".join(plan.answer[:5]) + (" " if reply_ends_with_space else "")
    closed = Continuation(plan.reasoning_text[:40], said, reasoning_closed=True)
    request = EngineRequest(conversation, continuation=closed)
    reasoning, answer, _ = await collect(engine.open_session(), request)

    assert not reasoning
    assert said + text(answer) == plan.answer_text  # one space between words, no more
    assert answer[0].text.startswith(" ") != reply_ends_with_space


async def test_a_continuation_inside_the_reasoning_continues_the_reasoning() -> None:
    engine = SimEngine(FAST)
    conversation = audio_conversation(1.0)
    plan = engine.plan(conversation)
    thought = "".join(plan.reasoning[:10])
    request = EngineRequest(conversation, continuation=Continuation(thought))
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
    closed = Continuation(plan.reasoning_text, reasoning_closed=True)
    _, _, usage = await collect(session, EngineRequest(conversation, continuation=closed))

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


WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "unit": {"enum": ["C", "F"]}},
        "required": ["city", "unit"],
    },
)


async def calls_of(engine: SimEngine, request: EngineRequest) -> tuple[str, list[ToolCall]]:
    events = [event async for event in engine.open_session().stream(request)]
    reply = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    return reply, [e for e in events if isinstance(e, ToolCall)]


async def test_first_turn_mode_calls_the_first_tool_after_a_short_reply() -> None:
    engine = SimEngine(dataclasses.replace(FAST, tool_calls="first-turn"))
    request = EngineRequest(audio_conversation(1.0), tools=(WEATHER,))
    reply, calls = await calls_of(engine, request)

    assert reply == "Let me check that."
    assert calls == [ToolCall("get_weather", '{"city": "sim", "unit": "C"}')]


async def test_once_the_result_is_in_the_conversation_the_turn_answers() -> None:
    engine = SimEngine(dataclasses.replace(FAST, tool_calls="first-turn"))
    turn = audio_conversation(1.0)
    items = (
        *turn.items,
        FunctionCallItem("f1", "call_1", "get_weather", "{}"),
        FunctionCallOutputItem("o1", "call_1", "sunny"),
    )
    conversation = Conversation("", items)
    reply, calls = await calls_of(engine, EngineRequest(conversation, tools=(WEATHER,)))

    assert not calls and reply == engine.plan(conversation).answer_text


@pytest.mark.parametrize(
    ("mode", "choice", "calls"),
    [
        ("never", ToolChoice(), 0),
        ("never", ToolChoice("required"), 1),
        ("never", ToolChoice("function", "get_weather"), 1),
        ("first-turn", ToolChoice("none"), 0),
    ],
)
async def test_tool_choice_decides_whether_the_sim_calls(
    mode: str, choice: ToolChoice, calls: int
) -> None:
    engine = SimEngine(dataclasses.replace(FAST, tool_calls=mode))  # type: ignore[arg-type]
    request = EngineRequest(audio_conversation(1.0), tools=(WEATHER,), tool_choice=choice)
    _, made = await calls_of(engine, request)
    assert len(made) == calls
