"""The vllm engine against stand-in servers: splitting, budget, usage, failover, prefill."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import numpy as np
import pytest

from realtime.conversation import Conversation, UserAudioItem, UserTextItem
from realtime.engines.base import (
    AnswerDelta,
    Continuation,
    EngineError,
    EngineEvent,
    EngineRequest,
    EngineUsage,
    InvalidToolCall,
    ReasoningDelta,
    ToolCall,
    ToolChoice,
    ToolSpec,
)
from realtime.engines.budget import stream_within_budget
from realtime.engines.vllm.engine import VllmEngine, VllmSession
from realtime.engines.vllm.options import VllmOptions
from tests.realtime.engines.vllm.fake_vllm import FakeVllmServer, Script
from tests.tts.waiting import wait_until

TEXT_TURN = Conversation("", (UserTextItem("u1", "What should I cook?"),))


@contextlib.asynccontextmanager
async def engine_for(
    *servers: FakeVllmServer, timeout_s: float = 10.0
) -> AsyncIterator[VllmEngine]:
    options = VllmOptions(
        urls=tuple(server.api_url for server in servers),
        stop_token_ids=(559,),
        timeout_s=timeout_s,
        health_interval_s=30.0,
    )
    engine = VllmEngine(options)
    await engine.start()
    try:
        yield engine
    finally:
        await engine.aclose()


@pytest.fixture
async def server() -> AsyncIterator[FakeVllmServer]:
    async with FakeVllmServer() as fake:
        yield fake


@pytest.fixture
async def second() -> AsyncIterator[FakeVllmServer]:
    async with FakeVllmServer() as fake:
        yield fake


async def run(session: VllmSession, request: EngineRequest) -> list[EngineEvent]:
    async with asyncio.timeout(20):
        return [event async for event in session.stream(request)]


async def run_within_budget(session: VllmSession, request: EngineRequest) -> list[EngineEvent]:
    async with asyncio.timeout(20):
        return [event async for event in stream_within_budget(session, request)]


def texts(events: list[EngineEvent]) -> tuple[str, str]:
    reasoning = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
    answer = "".join(e.text for e in events if isinstance(e, AnswerDelta))
    return reasoning, answer


def usage_of(events: list[EngineEvent]) -> EngineUsage:
    usages = [event for event in events if isinstance(event, EngineUsage)]
    assert len(usages) == 1 and events[-1] is usages[0]
    return usages[0]


async def test_a_reply_streams_as_reasoning_then_answer_with_its_usage(
    server: FakeVllmServer,
) -> None:
    server.default = Script(prompt_tokens=300, cached_tokens=256)
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN))

    assert texts(events) == ("Let me think.\n", "Hello there.")
    kinds = [type(e) for e in events if not isinstance(e, EngineUsage)]
    assert kinds == sorted(kinds, key=lambda kind: kind is AnswerDelta)
    usage = usage_of(events)
    assert (usage.prompt_tokens, usage.cached_prompt_tokens) == (300, 256)
    assert usage.completion_tokens == len(server.default.deltas)
    assert usage.reasoning_tokens == 5  # "Let me", " think", ".", "\n", "</think>"


async def test_the_reasoning_budget_closes_the_stream_and_continues_with_the_answer(
    server: FakeVllmServer,
) -> None:
    server.scripts = [
        Script(
            deltas=("One", " two", " three", " four", " five", "</think>", "never"),
            delta_interval_s=0.05,
        ),
        Script(deltas=(" Short", " answer.")),
    ]
    async with engine_for(server) as engine:
        request = EngineRequest(TEXT_TURN, reasoning_budget=3)
        events = await run_within_budget(engine.open_session(), request)

    assert texts(events) == ("One two three", "Short answer.")
    first, answer = server.requests
    assert first.abandoned
    assert answer.body["continue_final_message"] is True
    assert answer.body["messages"][-1] == {
        "role": "assistant",
        "content": "<think>\nOne two three\n</think>\n\n",
    }
    usage = usage_of(events)
    assert usage.reasoning_tokens >= 3 and usage.completion_tokens >= 5


async def test_a_zero_budget_asks_for_the_answer_at_once(server: FakeVllmServer) -> None:
    server.default = Script(deltas=("Hi", "!"))
    async with engine_for(server) as engine:
        request = EngineRequest(TEXT_TURN, reasoning_budget=0)
        events = await run_within_budget(engine.open_session(), request)

    assert texts(events) == ("", "Hi!")
    (only,) = server.bodies()
    assert only["messages"][-1]["content"] == "<think>\n</think>\n\n"


async def test_a_continuation_that_closed_the_reasoning_makes_everything_answer(
    server: FakeVllmServer,
) -> None:
    server.default = Script(deltas=(" and", " </think> stays", " text"))
    closed = Continuation("ok", "So far", reasoning_closed=True)
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN, continuation=closed))

    assert texts(events) == ("", " and </think> stays text")
    assert usage_of(events).reasoning_tokens == 0


async def test_max_tokens_is_shared_by_the_reasoning_and_the_answer(server: FakeVllmServer) -> None:
    server.scripts = [Script(deltas=("a", "b", "c", "d")), Script(deltas=("x",))]
    async with engine_for(server) as engine:
        request = EngineRequest(TEXT_TURN, reasoning_budget=2, max_tokens=10)
        await run_within_budget(engine.open_session(), request)

    first, answer = server.bodies()
    assert first["max_tokens"] == 10
    assert answer["max_tokens"] == 10 - 2  # the budget's two tokens were generated


async def test_a_replica_that_refuses_before_the_first_token_is_retried_elsewhere(
    server: FakeVllmServer, second: FakeVllmServer
) -> None:
    async with engine_for(server, second) as engine:
        session = engine.open_session()
        refused = engine.replicas.replicas[0]
        server.scripts = [Script(status=503, error_message="restarting")]
        events = await run(session, EngineRequest(TEXT_TURN))
        again = await run(session, EngineRequest(TEXT_TURN))

        assert texts(events) == ("Let me think.\n", "Hello there.")
        assert texts(again) == texts(events)
        assert usage_of(events).retries == 1 and usage_of(again).retries == 0
        # One failure does not take a replica away from every session.
        assert refused.healthy and refused.breaker.state == "closed"
        assert session.replica is engine.replicas.replicas[1]
    assert len(server.requests) == 1 and len(second.requests) == 2


async def test_a_failure_mid_stream_is_an_engine_error_naming_the_replica(
    server: FakeVllmServer, second: FakeVllmServer
) -> None:
    server.scripts = [Script(cut_after=6)]
    async with engine_for(server, second) as engine:
        session = engine.open_session()
        received: list[EngineEvent] = []
        with pytest.raises(EngineError, match=f"vLLM at {server.api_url}.*mid-stream"):
            async with asyncio.timeout(20):
                async for event in session.stream(EngineRequest(TEXT_TURN)):
                    received.append(event)
        assert received
        after = await run(session, EngineRequest(TEXT_TURN))

    # Never retried after tokens reached the client; the session carries on.
    assert len(server.requests) + len(second.requests) == 2
    assert texts(after)[1] == "Hello there."


async def test_a_replica_that_never_answers_times_out_with_an_engine_error(
    server: FakeVllmServer,
) -> None:
    server.scripts = [Script(first_chunk_delay_s=60)]
    async with engine_for(server, timeout_s=0.5) as engine:
        with pytest.raises(EngineError, match=r"no first token within 0\.5 s"):
            await run(engine.open_session(), EngineRequest(TEXT_TURN))


async def test_with_every_replica_down_the_error_says_so(server: FakeVllmServer) -> None:
    server.health_status = 503
    async with engine_for(server) as engine:
        with pytest.raises(EngineError, match="no vLLM replica is available"):
            await run(engine.open_session(), EngineRequest(TEXT_TURN))
        server.health_status = 200
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN))

    assert texts(events)[1] == "Hello there."


async def test_closing_the_stream_closes_the_request_on_the_server(server: FakeVllmServer) -> None:
    server.default = Script(deltas=tuple(f" w{i}" for i in range(500)), delta_interval_s=0.01)
    async with engine_for(server) as engine:
        async with contextlib.aclosing(engine.open_session().stream(EngineRequest(TEXT_TURN))) as s:
            async for event in s:
                if isinstance(event, ReasoningDelta):
                    break
        await wait_until(lambda: not server.streams_open, timeout_s=5)

    assert server.requests[0].abandoned


async def test_sessions_are_pinned_to_different_replicas(
    server: FakeVllmServer, second: FakeVllmServer
) -> None:
    async with engine_for(server, second) as engine:
        one, two = engine.open_session(), engine.open_session()
        await run(one, EngineRequest(TEXT_TURN))
        await run(two, EngineRequest(TEXT_TURN))
        await run(one, EngineRequest(TEXT_TURN))
        await one.aclose()
        await two.aclose()
        counts = [replica.sessions for replica in engine.replicas.replicas]

    assert (len(server.requests), len(second.requests)) in ((2, 1), (1, 2))
    assert counts == [0, 0]


async def test_a_prefill_sends_the_turn_so_far_for_one_token_to_the_pinned_replica(
    server: FakeVllmServer, second: FakeVllmServer
) -> None:
    chunk = np.zeros(16_000, np.int16)
    ongoing = UserAudioItem("u1", [chunk], complete=False)
    async with engine_for(server, second) as engine:
        session = engine.open_session()
        await session.prefill(EngineRequest(Conversation("", (ongoing,)), max_tokens=1))
        final = UserAudioItem("u1", [chunk, np.ones(8_000, np.int16)])
        await run(session, EngineRequest(Conversation("", (final,))))

    bodies = server.bodies() or second.bodies()
    assert [body["stream"] for body in bodies] == [False, True]
    assert bodies[0]["max_tokens"] == 1 and "stream_options" not in bodies[0]
    assert len(bodies[1]["messages"][0]["content"]) == 2


async def test_a_call_in_the_reply_is_a_tool_call_and_its_text_is_not_reply_text(
    server: FakeVllmServer,
) -> None:
    deltas = ("Hmm", ".", "</th", "ink>\n\n", "One moment.", "<tool", "_call>function\nget_",
              "weather\n", '{"city": ', '"Paris"}</tool_', "call>")  # fmt: skip
    server.default = Script(deltas=deltas)
    tool = ToolSpec("get_weather", "The weather", {"type": "object"})
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN, tools=(tool,)))

    assert texts(events) == ("Hmm.", "One moment.")
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall("get_weather", '{"city": "Paris"}')
    ]
    assert server.bodies()[0]["tools"][0]["function"]["name"] == "get_weather"


async def test_a_call_with_broken_arguments_is_an_invalid_call_not_a_failure(
    server: FakeVllmServer,
) -> None:
    server.default = Script(deltas=("</think>", "<tool_call>function\nf\n{oops}</tool_call>"))
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), EngineRequest(TEXT_TURN))

    [invalid] = [e for e in events if isinstance(e, InvalidToolCall)]
    assert invalid.name == "f" and "JSON" in invalid.reason
    assert isinstance(events[-1], EngineUsage)


@pytest.mark.parametrize(
    ("choice", "opening", "rest"),
    [
        (ToolChoice("required"), "<tool_call>function\n", 'get_weather\n{"city": "Oslo"}'),
        (ToolChoice("function", "get_weather"), "<tool_call>function\nget_weather\n",
         '{"city": "Oslo"}'),
    ],
)  # fmt: skip
async def test_a_required_call_opens_the_reply_with_the_call_after_the_reasoning(
    server: FakeVllmServer, choice: ToolChoice, opening: str, rest: str
) -> None:
    server.scripts = [
        Script(deltas=("Weather", " then.", "</think>", "\n\nI think", " it rains."),
               delta_interval_s=0.02),
        Script(deltas=(rest[:5], rest[5:], "</tool_call>")),
    ]  # fmt: skip
    tool = ToolSpec("get_weather", "The weather", {"type": "object"})
    request = EngineRequest(TEXT_TURN, tools=(tool,), tool_choice=choice)
    async with engine_for(server) as engine:
        events = await run(engine.open_session(), request)

    assert texts(events) == ("Weather then.", "")  # the reply the model began is not used
    assert [e for e in events if isinstance(e, ToolCall)] == [
        ToolCall("get_weather", '{"city": "Oslo"}')
    ]
    first, forced = server.requests
    assert first.abandoned
    assert forced.body["messages"][-1] == {
        "role": "assistant",
        "content": "<think>\nWeather then.\n</think>\n\n" + opening,
    }
    assert forced.body["continue_final_message"] is True
    assert len([e for e in events if isinstance(e, EngineUsage)]) == 1


async def test_a_turn_is_transcribed_by_the_model_in_a_side_request(
    server: FakeVllmServer,
) -> None:
    from realtime.engines.base import TranscriptionHints

    server.default = Script(deltas=("What", " time", " is", " it", "?"))
    turn = UserAudioItem("u1", [np.zeros(16_000, np.int16)])
    async with engine_for(server) as engine:
        session = engine.open_session()
        async with asyncio.timeout(20):
            deltas = [d async for d in session.transcribe(turn, TranscriptionHints("en"))]
    assert "".join(deltas) == "What time is it?"
    body = server.bodies()[0]
    system, user, assistant = body["messages"]
    assert "Transcribe" in str(system["content"]) and "code en" in str(system["content"])
    assert user["role"] == "user" and body["temperature"] == 0.0
    assert assistant["role"] == "assistant" and "</think>" in str(assistant["content"])
