"""Function calls through the real service, driven by the official ``openai`` client.

The service runs as a subprocess with the ``vllm`` engine pointed at a fake vLLM on
127.0.0.1 (``tests/realtime/engines/vllm/fake_vllm.py``) that streams Step-Audio-style
replies with ``<tool_call>`` blocks, and with the ``sim`` engine scripted to call a tool on
the first turn (``--sim-tool-calls first-turn``), under ``after-think`` and ``mps``. Every
server event is validated against the ``openai`` package's models by the client itself.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.tools import WEATHER
from tests.realtime.engines.vllm.fake_vllm import FakeVllmServer, Script

TIMEOUT_S = 60.0
CALL_REPLY = (
    "The user wants the weather.", "\n</thi", "nk>\n\n", "One moment.", "<tool_",
    "call>function\nget_weather\n", '{"city": ', '"Paris"}</tool_call>',
)  # fmt: skip
ANSWER_REPLY = ("Got it.", "\n</think>\n\n", "It is sunny", " in Paris.")


@pytest.fixture
async def fake_vllm() -> AsyncIterator[FakeVllmServer]:
    async with FakeVllmServer() as fake:
        yield fake


@pytest.fixture
async def vllm_service(fake_vllm: FakeVllmServer, tmp_path: Path) -> AsyncIterator[ServiceProcess]:
    service = ServiceProcess(
        "--engine", "vllm", "--engine-url", fake_vllm.api_url, "--tts", "espeak",
        "--health-interval-s", "1", "--policy", "after-think",  # one scripted request a turn
        log_path=tmp_path / "serve.log",
    )  # fmt: skip
    await asyncio.to_thread(service.start)  # the fake answers health checks meanwhile
    try:
        yield service
    finally:
        await asyncio.to_thread(service.stop)


@pytest.fixture(scope="module", params=["after-think", "mps"])
def sim_service(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp("sim-tools") / "serve.log"
    args = (
        "--engine", "sim", "--sim-tool-calls", "first-turn", "--policy", request.param,
        "--tts", "espeak", "--sim-itl-ms", "4", "--sim-reasoning-tokens", "60",
        "--sim-answer-tokens", "10", "--sim-length-jitter", "0", "--formulation-tokens", "20",
        "--articulation-tokens", "6",
    )  # fmt: skip
    with ServiceProcess(*args, log_path=log) as service:
        yield service


async def response_events(connection: Any) -> list[Any]:
    """Events up to and including the next ``response.done`` (errors included)."""
    events: list[Any] = []
    async with asyncio.timeout(TIMEOUT_S):
        async for event in connection:
            events.append(event)
            if event.type == "response.done":
                return events
    raise AssertionError("the connection closed before response.done")


def assert_openai_shapes(events: list[Any]) -> None:
    """Every event (but this service's extensions) validates against the openai models."""
    from openai.types.realtime import RealtimeServerEvent
    from pydantic import TypeAdapter

    adapter: TypeAdapter[Any] = TypeAdapter(RealtimeServerEvent)
    for event in events:
        if not event.type.startswith("response.reasoning."):
            adapter.validate_python(event.model_dump(mode="json", exclude_unset=True))


def of_type(events: list[Any], kind: str) -> list[Any]:
    return [event for event in events if event.type == kind]


def spoken(events: list[Any]) -> str:
    return "".join(e.delta for e in of_type(events, "response.output_audio_transcript.delta"))


def audio_bytes(events: list[Any]) -> int:
    return sum(
        len(base64.b64decode(e.delta)) for e in of_type(events, "response.output_audio.delta")
    )


def function_calls(events: list[Any]) -> list[Any]:
    done = of_type(events, "response.done")[-1]
    return [item for item in done.response.output if item.type == "function_call"]


def connect(service: ServiceProcess) -> Any:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="unused", websocket_base_url=f"ws://127.0.0.1:{service.port}/v1")
    return client.realtime.connect(model="step-audio-r1")


async def ask(connection: Any, text: str, **session: Any) -> None:
    await connection.session.update(
        session={"type": "realtime", "audio": {"input": {"turn_detection": None}}, **session}
    )
    await connection.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    await connection.response.create()


async def test_a_tool_call_turn_then_the_spoken_answer_from_the_tools_output(
    fake_vllm: FakeVllmServer, vllm_service: ServiceProcess
) -> None:
    fake_vllm.scripts = [Script(deltas=CALL_REPLY), Script(deltas=ANSWER_REPLY)]
    async with connect(vllm_service) as connection:
        await ask(connection, "What is the weather in Paris?", tools=[WEATHER])
        first = await response_events(connection)

        kinds = [event.type for event in first]
        added = [
            i for i, e in enumerate(first)
            if e.type == "response.output_item.added" and e.item.type == "function_call"
        ]  # fmt: skip
        assert len(added) == 1
        call_item = first[added[0]].item
        delta = kinds.index("response.function_call_arguments.delta")
        done = kinds.index("response.function_call_arguments.done")
        item_done = max(
            i for i, e in enumerate(first)
            if e.type == "response.output_item.done" and e.item.type == "function_call"
        )  # fmt: skip
        assert added[0] < delta < done < item_done < kinds.index("response.done")
        assert first[done].name == "get_weather" and first[done].call_id == call_item.call_id
        assert json.loads(first[done].arguments) == {"city": "Paris"}
        assert "error" not in kinds
        assert_openai_shapes(first)
        assert spoken(first) == "One moment."  # the text before the call is spoken
        assert audio_bytes(first) > 0
        [call] = function_calls(first)
        assert call.call_id == call_item.call_id and call.status == "completed"

        await connection.conversation.item.create(
            item={
                "type": "function_call_output",
                "call_id": call.call_id,
                "output": '{"sky": "clear", "celsius": 21}',
            }
        )
        await connection.response.create()
        second = await response_events(connection)

    assert spoken(second) == "It is sunny in Paris."
    assert audio_bytes(second) > 24_000 // 2  # a quarter second of 24 kHz int16 and more
    assert not function_calls(second)
    body = fake_vllm.bodies()[1]
    assert body["tools"][0]["function"]["name"] == "get_weather"
    messages = body["messages"]
    assert messages[-2] == {
        "role": "assistant",
        "content": 'One moment.<tool_call>function\nget_weather\n{"city": "Paris"}</tool_call>',
    }
    assert messages[-1]["role"] == "tool"
    assert messages[-1]["content"] == '{"sky": "clear", "celsius": 21}'


async def test_several_calls_in_one_response_each_get_their_item(
    fake_vllm: FakeVllmServer, vllm_service: ServiceProcess
) -> None:
    second_call = '<tool_call>function\nget_weather\n{"city": "Oslo"}</tool_call>'
    fake_vllm.scripts = [Script(deltas=(*CALL_REPLY, "\n", second_call))]
    async with connect(vllm_service) as connection:
        await ask(connection, "Paris and Oslo?", tools=[WEATHER])
        events = await response_events(connection)

    calls = function_calls(events)
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris", "Oslo"]
    assert len({c.call_id for c in calls}) == 2
    indexes = [e.output_index for e in of_type(events, "response.function_call_arguments.done")]
    assert indexes == [1, 2]


async def test_without_parallel_tool_calls_a_reply_makes_one_call_and_the_rest_is_an_error(
    fake_vllm: FakeVllmServer, vllm_service: ServiceProcess
) -> None:
    second_call = '<tool_call>function\nget_weather\n{"city": "Oslo"}</tool_call>'
    fake_vllm.scripts = [Script(deltas=(*CALL_REPLY, "\n", second_call))]
    async with connect(vllm_service) as connection:
        await ask(connection, "Paris and Oslo?", tools=[WEATHER], parallel_tool_calls=False)
        events = await response_events(connection)

    calls = function_calls(events)
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Paris"]
    [error] = of_type(events, "error")
    assert error.error.code == "invalid_tool_call" and "parallel_tool_calls" in error.error.message
    assert of_type(events, "response.done")[-1].response.status == "completed"


async def test_a_reply_that_is_only_a_call_has_no_message_item(
    fake_vllm: FakeVllmServer, vllm_service: ServiceProcess
) -> None:
    """As OpenAI's: the model reasoned and called, and said nothing, so the response's only
    output item is the call (no empty assistant message announced first)."""
    call_only = (
        "The user wants the weather.", "\n</think>\n\n",
        '<tool_call>function\nget_weather\n{"city": "Paris"}</tool_call>',
    )  # fmt: skip
    fake_vllm.scripts = [Script(deltas=call_only)]
    async with connect(vllm_service) as connection:
        await ask(connection, "What is the weather in Paris?", tools=[WEATHER])
        events = await response_events(connection)

    items = [e.item for e in of_type(events, "response.output_item.added")]
    assert [item.type for item in items] == ["function_call"]
    assert not of_type(events, "response.content_part.added")
    assert not of_type(events, "response.output_audio.delta")
    added = [e.item.type for e in of_type(events, "conversation.item.added")]
    assert added[-1] == "function_call" and "message" not in added[1:], added
    done = of_type(events, "response.done")[-1].response
    assert done.status == "completed" and [item.type for item in done.output] == ["function_call"]
    assert of_type(events, "response.function_call_arguments.done")[0].output_index == 0
    assert_openai_shapes(events)


async def test_tool_choice_none_yields_no_call_and_the_model_sees_no_tools(
    fake_vllm: FakeVllmServer, vllm_service: ServiceProcess
) -> None:
    fake_vllm.scripts = [Script(deltas=CALL_REPLY)]  # a model that calls anyway
    async with connect(vllm_service) as connection:
        await ask(connection, "Weather?", tools=[WEATHER], tool_choice="none")
        events = await response_events(connection)

    assert not function_calls(events)
    assert not of_type(events, "response.function_call_arguments.done")
    assert "tool_call" not in spoken(events) and "get_weather" not in spoken(events)
    assert "tools" not in fake_vllm.bodies()[0]


async def test_invalid_arguments_are_an_error_event_and_the_session_keeps_working(
    fake_vllm: FakeVllmServer, vllm_service: ServiceProcess
) -> None:
    broken = (
        "Hmm.",
        "</think>",
        "Sure.",
        "<tool_call>function\nget_weather\n{city: Paris}</tool_call>",
    )
    fake_vllm.scripts = [Script(deltas=broken), Script(deltas=ANSWER_REPLY)]
    async with connect(vllm_service) as connection:
        await ask(connection, "Weather?", tools=[WEATHER])
        events = await response_events(connection)
        [error] = of_type(events, "error")
        assert error.error.code == "invalid_tool_call" and "JSON" in error.error.message
        assert of_type(events, "response.done")[0].response.status == "completed"
        assert not function_calls(events)
        assert spoken(events) == "Sure."

        await connection.response.create()
        again = await response_events(connection)
    assert spoken(again) == "It is sunny in Paris."


async def test_the_simulated_engine_calls_then_answers_under_each_policy(
    sim_service: ServiceProcess,
) -> None:
    async with connect(sim_service) as connection:
        await ask(connection, "What is the weather?", tools=[WEATHER])
        first = await response_events(connection)
        [call] = function_calls(first)
        assert call.name == "get_weather" and json.loads(call.arguments) == {"city": "sim"}
        assert spoken(first) == "Let me check that."
        await connection.conversation.item.create(
            item={"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
        )
        await connection.response.create()
        second = await response_events(connection)

    assert not function_calls(second) and "error" not in [e.type for e in second]
    assert len(spoken(second).split()) >= 10 and audio_bytes(second) > 0
