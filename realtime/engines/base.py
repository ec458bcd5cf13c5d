"""The engine interface: stream typed reasoning/answer/tool-call events for a typed request.

A request says *what* to generate (the conversation, how far the assistant message has got,
the tools on offer, limits); each engine renders it in its model's own format (markers,
roles) and parses its model's output back into typed events. Engines declare what they can
do (``EngineCapabilities``) instead of being recognised by name.

An ``Engine`` is shared by the whole process (connection pools, models); each client
session opens its own ``EngineSession`` (per-session state such as the replica it is
pinned to, or an incremental transcriber). Cancelling a stream means closing its async
generator (``aclose``, e.g. through ``contextlib.aclosing``): backends must release the request
(close the HTTP stream so vLLM aborts it) in their ``finally``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Protocol

from realtime.conversation import Conversation, UserAudioItem


@dataclass(frozen=True)
class ReasoningDelta:
    """Text inside the model's ``<think> ... </think>`` block."""

    text: str
    tokens: int = 1


@dataclass(frozen=True)
class AnswerDelta:
    """Reply text, after ``</think>``; this is what gets spoken."""

    text: str
    tokens: int = 1


@dataclass(frozen=True)
class InputTranscription:
    """A transcript of a user audio item, for engines that produce one (``echo``)."""

    item_id: str
    text: str


@dataclass(frozen=True)
class EngineUsage:
    """Token counts for one request, sent once at the end of a stream."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    reasoning_tokens: int = 0
    cached_prompt_tokens: int = 0
    retries: int = 0
    """Requests tried again after failing before their first token."""


@dataclass(frozen=True)
class ToolCall:
    """The model called a function: ``arguments`` is its JSON object, as the model wrote it."""

    name: str
    arguments: str


@dataclass(frozen=True)
class InvalidToolCall:
    """The model wrote a function call the engine could not read (e.g. its arguments are not
    a JSON object). ``reason`` says what is wrong; the call is not made."""

    name: str
    arguments: str
    reason: str


EngineEvent = (
    ReasoningDelta | AnswerDelta | ToolCall | InvalidToolCall | InputTranscription | EngineUsage
)


def add_usage(total: EngineUsage | None, usage: EngineUsage) -> EngineUsage:
    """Token counts of several requests of one turn, added up."""
    if total is None:
        return usage
    return EngineUsage(
        prompt_tokens=total.prompt_tokens + usage.prompt_tokens,
        completion_tokens=total.completion_tokens + usage.completion_tokens,
        reasoning_tokens=total.reasoning_tokens + usage.reasoning_tokens,
        cached_prompt_tokens=total.cached_prompt_tokens + usage.cached_prompt_tokens,
        retries=total.retries + usage.retries,
    )


@dataclass
class UsageTally:
    """The usage of the several requests of one turn, added up as their streams pass."""

    total: EngineUsage | None = None

    def add(self, usage: EngineUsage) -> None:
        self.total = add_usage(self.total, usage)

    async def relay(
        self, events: AsyncGenerator[EngineEvent, None]
    ) -> AsyncGenerator[EngineEvent, None]:
        """``events`` but their usage, which is added up here (and closed with the relay)."""
        async with contextlib.aclosing(events):
            async for event in events:
                if isinstance(event, EngineUsage):
                    self.add(event)
                else:
                    yield event


@dataclass(frozen=True)
class Continuation:
    """How far the assistant message has got, for a request that continues it.

    ``reasoning``: the reasoning written so far; ``reasoning_closed``: whether the reasoning
    block is closed (the request then writes reply text after ``reply``, the reply so far).
    With the block open, the request goes on reasoning after ``reasoning``.
    """

    reasoning: str = ""
    reply: str = ""
    reasoning_closed: bool = False

    def __post_init__(self) -> None:
        if self.reply and not self.reasoning_closed:
            raise ValueError("a continuation with reply text has its reasoning closed")


@dataclass(frozen=True)
class ToolSpec:
    """A function the model may call: its name, what it does, its JSON-schema parameters."""

    name: str
    description: str = ""
    parameters: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ToolChoice:
    """Whether the model may (``auto``), must not (``none``) or must (``required``) call a
    tool, or must call the one named ``function``."""

    mode: Literal["auto", "none", "required", "function"] = "auto"
    function: str | None = None

    def __post_init__(self) -> None:
        if (self.mode == "function") != (self.function is not None):
            raise ValueError("a tool choice names a function exactly when its mode is 'function'")


@dataclass(frozen=True)
class EngineRequest:
    """One generation request.

    ``continuation`` continues the assistant message instead of opening a new one (None:
    a fresh message, which starts with the reasoning). ``tools`` are offered to the model
    under ``tool_choice``. ``reasoning_budget`` caps reasoning tokens: once spent, the
    reasoning block is closed and the answer follows (``realtime/engines/budget.py`` does
    this for every engine). ``max_tokens`` caps the whole completion.
    """

    conversation: Conversation
    max_tokens: int | None = None
    reasoning_budget: int | None = None
    continuation: Continuation | None = None
    tools: tuple[ToolSpec, ...] = ()
    tool_choice: ToolChoice = field(default_factory=ToolChoice)
    temperature: float | None = None

    @property
    def offered_tools(self) -> tuple[ToolSpec, ...]:
        """The tools the model is shown: none under ``tool_choice`` ``none``."""
        return () if self.tool_choice.mode == "none" else self.tools

    @property
    def starts_in_reasoning(self) -> bool:
        return self.continuation is None or not self.continuation.reasoning_closed


@dataclass(frozen=True)
class EngineCapabilities:
    """What an engine can do. ``continuation``: it continues an assistant message where a
    ``Continuation`` left it (needed by the speaking policies that speak while reasoning);
    ``tools``: it offers tools to its model and reports the calls the model makes;
    ``transcription``: it transcribes a user's audio turn on request (``transcribe``), for
    ``audio.input.transcription``."""

    continuation: bool = False
    tools: bool = False
    transcription: bool = False


@dataclass(frozen=True)
class TranscriptionHints:
    """``audio.input.transcription``'s ``language`` (ISO-639-1) and ``prompt``."""

    language: str | None = None
    prompt: str | None = None


@dataclass(frozen=True)
class EngineInfo:
    """What the service reports about its engine (on the wire and in benchmark reports)."""

    name: str
    model: str
    simulated: bool = False


class EngineError(RuntimeError):
    """The engine failed (down, timed out, broke mid-stream). The message is shown to the client."""


class EngineSession(Protocol):
    """One client's handle on the engine."""

    def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        """Stream the reply to ``request``; raises ``EngineError`` on failure."""
        ...

    async def prefill(self, request: EngineRequest) -> None:
        """Listen while thinking: do the work for ``request``'s prompt ahead of time.

        Called while the user is still speaking, with the conversation plus the audio
        chunks closed so far. Produces no output; may be cancelled at any point. Engines
        that cannot use it return at once.
        """
        ...

    def transcribe(
        self, item: UserAudioItem, hints: TranscriptionHints
    ) -> AsyncGenerator[str, None]:
        """The transcript of a user's audio turn, in deltas; only engines whose
        ``capabilities.transcription`` is set (others raise ``EngineError``). Runs beside the
        reply, never before it."""
        ...

    async def aclose(self) -> None: ...


class Engine(Protocol):
    capabilities: ClassVar[EngineCapabilities]
    info: EngineInfo

    async def start(self) -> None: ...

    async def aclose(self) -> None: ...

    def open_session(self) -> EngineSession: ...

    def admission_problem(self) -> str | None:
        """Why a new session should be refused now (every server saturated or down), or
        None. The service refuses it with 503 and ``Retry-After``."""
        ...

    def load_report(self) -> Mapping[str, Mapping[str, float]]:
        """Per server, measures of its state and load (exported as metrics); {} if none."""
        ...
