"""The ``sim`` engine: a timing simulator of Step-Audio-R1 served by vLLM, for capacity planning.

**Every figure it produces is simulated.** It runs no model: it streams plausible words
(``sim_text``) on the schedule a real deployment would, so that the service, the speaking
policies and the benchmarks can be exercised at production timings on a machine without a
GPU. Its ``EngineInfo`` says ``simulated=True`` (which reaches ``response.x_turn``,
``/healthz`` and the ``step_realtime_engine_info`` metric) and it logs a WARNING at start.

The model of one request:

- time to first token = ``ttft_ms`` + (prompt tokens not in the session's prefix cache) /
  ``prefill_tokens_per_s``; the prompt's audio costs Step-Audio's encoder arithmetic
  (``sim_prompt``), ``prefill()`` (listen while thinking) fills the cache ahead;
- then one token every ``itl_ms`` x (1 + ``batch_slowdown`` x (n - 1)), where n is the number
  of streams decoding on the engine at that moment (a decode step reads the weights once for
  the whole batch, so extra sequences cost little while the batch is small); prefills are
  assumed not to stall other streams' decoding (they are short here: a listen-while-thinking
  chunk of audio, or an articulation prefix that is mostly cached);
- the stream holds the turn's planned reasoning, a ``</think>`` step, then the planned reply,
  and one more step for the end-of-turn token. ``max_tokens`` cuts the whole completion; a
  ``Continuation`` continues the plan after what it holds (with the reasoning closed: reply
  tokens, going on from the reply words it already has). The reasoning budget is not the
  engine's business (``realtime/engines/budget.py``);
- function calls (``SimParams.tool_calls``): with ``first-turn``, a request that offers
  tools and whose user turn has no function result yet plans a short reply ("Let me check
  that.") and a call of the first tool offered (one step), with arguments filled in from its
  JSON schema; once the result is in the conversation the turn's normal reply follows. A
  ``tool_choice`` of ``required`` or a named function makes every such turn call (the named
  tool), whatever the flag says; ``none`` never does.

Default figures: Step-Audio-R1 (33B: Qwen2 audio encoder, adaptor, Qwen2.5-32B decoder;
StepFun's README) in bf16 on vLLM with tensor parallel 4 on H100/H800-class GPUs (StepFun
serve it with ``--tensor-parallel-size 4``, "tested on 4xL40S/H100/H800/H20"):

- ``itl_ms = 12``: vLLM issue #18725 measures QwQ-32B (the Qwen2.5-32B architecture) on vLLM
  at concurrency 1 on 8xH200 at a median ITL of 6.4 ms. TP=4 on H100 holds twice the weight
  bytes per GPU (16.4 GB in bf16) at 0.7x the memory bandwidth (3.35 vs 4.8 TB/s): the
  bandwidth floor alone is 16.4 GB / 3.35 TB/s = 4.9 ms, plus all-reduces and kernel
  launches. NVIDIA's NIM LLM benchmarking page (performance section) lists Llama-3.3-70B
  fp8 TP=2 on 2xH100 (35 GB per GPU) at 18.9 ms and Llama-3.1-70B at 13.2 ms at
  concurrency 1. 12 ms sits between these.
- ``prefill_tokens_per_s = 20000``: the same NIM page gives Llama-3.3-70B fp8 TP=2 a TTFT of
  47.8 ms at 500 input tokens and 406.8 ms at 5000, i.e. 12.5k tokens/s for 70.6B
  parameters; four H100s in bf16 have the same peak tensor throughput as two in fp8 and
  Qwen2.5-32B needs 0.46x the FLOPs per token, which gives about 27k tokens/s; 20k leaves
  room for TP=4 communication and the audio encoder.
- ``ttft_ms = 30``: the fixed part of time to first token (scheduling, one forward step,
  streaming): NIM lists 25 ms for Llama-3.1-70B at concurrency 1.
- ``batch_slowdown = 0.01``: in the same NIM table Llama-3.1-70B's ITL goes from 13.2 ms
  (1 request) to 15.3 ms (25) and 17.4 ms (50), about 0.65% per extra sequence; rounded up.
- ``reasoning_tokens = 400``, ``answer_tokens = 40``, ``length_jitter = 0.25``: assumptions,
  not measurements: a reasoning block of a few hundred tokens before a spoken reply of two
  or three sentences. Tokens are words here (one word, one token).

For comparison, StepFun report a first-packet latency of 0.92 s for Step-Audio-R1 Realtime
(Step-Audio-R1 technical report, arXiv 2511.15848, Table 2), and Artificial Analysis'
time-to-first-audio chart in StepFun's README shows 1.51 s for Step-Audio R1.1 (Realtime).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from realtime.conversation import Conversation, FunctionCallOutputItem, UserAudioItem, UserTextItem
from realtime.engines.base import (
    AnswerDelta,
    EngineCapabilities,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    EngineUsage,
    ReasoningDelta,
    ToolCall,
    ToolSpec,
    TranscriptionHints,
)
from realtime.engines.sim_prompt import PrefixCache, build_prompt
from realtime.engines.sim_text import TOOL_PREAMBLE, TurnPlan, plan_turn
from realtime.engines.step_audio import REASONING_END

log = logging.getLogger(__name__)

SIM_MODEL = "step-audio-r1-sim (simulated: Qwen2.5-32B decoder, bf16, TP=4, H100-class)"
# What the model writes between its reasoning and its reply; continuations close the
# reasoning block the same way (``step_audio.assistant_text``), so they hit the cache.
THINK_END_TEXT = "\n" + REASONING_END
ToolCalls = Literal["never", "first-turn"]
TOOL_CALL_MODES: tuple[str, ...] = ("never", "first-turn")


@dataclass(frozen=True)
class SimParams:
    """The simulator's figures (defaults: see the module docstring for their sources)."""

    prefill_tokens_per_s: float = 20_000.0
    ttft_ms: float = 30.0
    itl_ms: float = 12.0
    batch_slowdown: float = 0.01
    reasoning_tokens: int = 400
    answer_tokens: int = 40
    length_jitter: float = 0.25
    seed: int = 0
    cache_block_tokens: int = 16
    tool_calls: ToolCalls = "never"

    def __post_init__(self) -> None:
        if self.prefill_tokens_per_s <= 0:
            raise ValueError("prefill_tokens_per_s must be > 0")
        if self.ttft_ms < 0 or self.itl_ms < 0 or self.batch_slowdown < 0:
            raise ValueError("ttft_ms, itl_ms and batch_slowdown must be >= 0")
        if self.reasoning_tokens < 0 or self.answer_tokens < 1:
            raise ValueError("need reasoning_tokens >= 0 and answer_tokens >= 1")
        if not 0.0 <= self.length_jitter < 1.0:
            raise ValueError("length_jitter must be in [0, 1)")
        if self.cache_block_tokens < 1:
            raise ValueError("cache_block_tokens must be >= 1")
        if self.tool_calls not in TOOL_CALL_MODES:
            raise ValueError(f"tool_calls must be one of {', '.join(TOOL_CALL_MODES)}")

    def first_token_s(self, uncached_tokens: int) -> float:
        """Seconds from request to first token with ``uncached_tokens`` left to prefill."""
        return self.ttft_ms / 1000.0 + max(0, uncached_tokens) / self.prefill_tokens_per_s

    def token_interval_s(self, decoding: int) -> float:
        """Seconds between two tokens of a stream while ``decoding`` streams decode."""
        return self.itl_ms / 1000.0 * (1.0 + self.batch_slowdown * max(0, decoding - 1))

    def describe(self) -> str:
        return (
            f"TTFT {self.ttft_ms:g} ms + prefill at {self.prefill_tokens_per_s:g} tokens/s, "
            f"ITL {self.itl_ms:g} ms (+{self.batch_slowdown:.1%} per extra stream), "
            f"~{self.reasoning_tokens} reasoning and ~{self.answer_tokens} reply tokens"
        )


@dataclass(frozen=True)
class _Step:
    kind: Literal["reasoning", "think_end", "answer", "tool_call"]
    text: str
    call: ToolCall | None = None


class SimSession:
    """One client's handle on the simulator, with its own prefix cache."""

    def __init__(self, engine: SimEngine) -> None:
        self._engine = engine
        self._cache = PrefixCache(engine.params.cache_block_tokens)
        self.open_streams = 0

    async def prefill(self, request: EngineRequest) -> None:
        params = self._engine.params
        prompt = build_prompt(request.conversation, request.continuation, request.offered_tools)
        cached = self._cache.cached_tokens(prompt)
        await asyncio.sleep(params.first_token_s(prompt.tokens - cached))
        self._cache.add(prompt)

    def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        return self._stream(request)

    async def transcribe(
        self, item: UserAudioItem, hints: TranscriptionHints
    ) -> AsyncGenerator[str, None]:
        """A SIMULATED transcript: no words are recognised; it says so, after the time the
        audio's prefill would take."""
        params = self._engine.params
        prompt = build_prompt(Conversation("", (item,)), None, ())
        await asyncio.sleep(params.first_token_s(prompt.tokens))
        yield f"(simulated transcript of {item.duration_s:.1f} s of speech)"

    async def _stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        engine = self._engine
        params = engine.params
        self.open_streams += 1
        engine.open_streams += 1
        try:
            prompt = build_prompt(request.conversation, request.continuation, request.offered_tools)
            cached = self._cache.cached_tokens(prompt)
            call = planned_call(request, params.tool_calls)
            steps = continuation(engine.plan(request.conversation), request, call)
            ends_with_eot = request.max_tokens is None or len(steps) <= request.max_tokens
            if request.max_tokens is not None:
                steps = steps[: request.max_tokens]
            log.debug(
                "simulated request: %d prompt tokens (%d cached), %d steps",
                prompt.tokens, cached, len(steps),
            )  # fmt: skip
            loop = asyncio.get_running_loop()
            await asyncio.sleep(params.first_token_s(prompt.tokens - cached))
            sequence = self._cache.add(prompt)
            reasoning = 0
            engine.decoding += 1
            try:
                due = loop.time()
                for index, step in enumerate(steps):
                    if index:
                        due += params.token_interval_s(engine.decoding)
                        await asyncio.sleep(max(0.0, due - loop.time()))
                    sequence.generated.append(step.text)
                    if step.kind == "reasoning":
                        reasoning += 1
                        yield ReasoningDelta(step.text)
                    elif step.kind == "answer":
                        yield AnswerDelta(step.text)
                    elif step.call is not None:
                        yield step.call
                if ends_with_eot:
                    due += params.token_interval_s(engine.decoding)
                    await asyncio.sleep(max(0.0, due - loop.time()))
            finally:
                engine.decoding -= 1
            yield EngineUsage(
                prompt_tokens=prompt.tokens,
                completion_tokens=len(steps),
                reasoning_tokens=reasoning,
                cached_prompt_tokens=cached,
            )
        finally:
            self.open_streams -= 1
            engine.open_streams -= 1

    async def aclose(self) -> None:
        self._cache.clear()


def planned_call(request: EngineRequest, mode: ToolCalls) -> ToolCall | None:
    """The function call this request's turn makes, if any (see the module docstring)."""
    tools = request.offered_tools
    choice = request.tool_choice
    if not tools or _has_result(request.conversation):
        return None
    if choice.mode == "function":
        tool = next((t for t in tools if t.name == choice.function), None)
        return None if tool is None else ToolCall(tool.name, sample_arguments(tool))
    if choice.mode == "required" or mode == "first-turn":
        return ToolCall(tools[0].name, sample_arguments(tools[0]))
    return None


def _has_result(conversation: Conversation) -> bool:
    """Whether a function result follows the last user item."""
    for item in reversed(conversation.items):
        if isinstance(item, FunctionCallOutputItem):
            return True
        if isinstance(item, UserAudioItem | UserTextItem):
            return False
    return False


def sample_arguments(tool: ToolSpec) -> str:
    """Arguments for ``tool``: a plausible value for each required parameter of its schema."""
    samples: dict[str, Any] = {
        "string": "sim", "integer": 1, "number": 1.0, "boolean": True, "array": [], "object": {},
    }  # fmt: skip
    properties = tool.parameters.get("properties") or {}
    required = tool.parameters.get("required") or []
    arguments = {}
    for name in required:
        schema = properties.get(name) if isinstance(properties, dict) else None
        kind = schema.get("type") if isinstance(schema, dict) else None
        if isinstance(schema, dict) and schema.get("enum"):
            arguments[name] = schema["enum"][0]
        else:
            arguments[name] = samples.get(kind, None) if isinstance(kind, str) else None
    return json.dumps(arguments)


def continuation(
    plan: TurnPlan, request: EngineRequest, call: ToolCall | None = None
) -> list[_Step]:
    """What the model writes for ``request``: the plan, continued after ``request.continuation``.

    With ``call``, the reply is a short preamble and the call instead of the planned answer.
    """
    answer = plan.answer if call is None else TOOL_PREAMBLE
    ending = [] if call is None else [_Step("tool_call", "", call)]
    done = request.continuation
    if done is None:
        return [*_reasoning_steps(plan, 0, ""), *_answer_steps(answer, ""), *ending]
    if done.reasoning_closed:
        return [*_answer_steps(answer, done.reply), *ending]
    thought = done.reasoning
    steps = _reasoning_steps(plan, len(thought.split()), thought)
    return [*steps, *_answer_steps(answer, ""), *ending]


def _reasoning_steps(plan: TurnPlan, done: int, before: str) -> list[_Step]:
    words = [word.lstrip() for word in plan.reasoning[done:]]
    steps = [_Step("reasoning", _spaced(word, before, index)) for index, word in enumerate(words)]
    return [*steps, _Step("think_end", THINK_END_TEXT)]


def _answer_steps(answer: tuple[str, ...], reply_so_far: str) -> list[_Step]:
    done = len(reply_so_far.split())
    words = [word.lstrip() for word in answer[done:]]
    before = reply_so_far.strip() and reply_so_far
    return [_Step("answer", _spaced(word, before, index)) for index, word in enumerate(words)]


def _spaced(word: str, before: str, index: int) -> str:
    """A word token: with a leading space unless it starts the text or follows whitespace."""
    if index == 0 and (not before or before[-1].isspace()):
        return word
    return " " + word


class SimEngine:
    """The simulator, shared by all sessions; counts streams decoding at once (the batch)."""

    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(
        continuation=True, tools=True, transcription=True
    )

    def __init__(self, params: SimParams | None = None) -> None:
        self.params = params or SimParams()
        self.info = EngineInfo(name="sim", model=SIM_MODEL, simulated=True)
        self.decoding = 0
        self.open_streams = 0

    def plan(self, conversation: Conversation) -> TurnPlan:
        """The reasoning and reply this conversation's next turn is planned to have."""
        params = self.params
        return plan_turn(
            seed=params.seed,
            instructions=conversation.instructions,
            item_ids=[item.id for item in conversation.items],
            reasoning_tokens=params.reasoning_tokens,
            answer_tokens=params.answer_tokens,
            length_jitter=params.length_jitter,
        )

    async def start(self) -> None:
        log.warning(
            "engine 'sim' is a SIMULATOR: no model runs, and every latency and token it "
            "produces is SIMULATED (%s)",
            self.params.describe(),
        )

    async def aclose(self) -> None:
        return None

    def open_session(self) -> SimSession:
        return SimSession(self)

    def admission_problem(self) -> str | None:
        return None  # in-process: no server to saturate

    def load_report(self) -> Mapping[str, Mapping[str, float]]:
        return {}
