"""The engine interface: stream typed reasoning/answer deltas from the conversation so far.

An ``Engine`` is shared by the whole process (connection pools, models); each client
session opens its own ``EngineSession`` (per-session state such as the replica it is
pinned to, or an incremental transcriber). Cancelling a stream means closing its async
generator (``aclose``, e.g. through ``contextlib.aclosing``): backends must release the request
(close the HTTP stream so vLLM aborts it) in their ``finally``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import Protocol

from realtime.conversation import Conversation


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


EngineEvent = ReasoningDelta | AnswerDelta | InputTranscription | EngineUsage


@dataclass(frozen=True)
class EngineRequest:
    """One generation request.

    ``assistant_prefix`` continues a final assistant message instead of opening a new one
    (vLLM's ``continue_final_message``); the text is raw, e.g. ``"<think>\\n...</think>\\n"``
    plus the reply already spoken, as Mind-Paced Speaking's articulation requests need.
    ``reasoning_budget`` caps reasoning tokens: the engine closes the reasoning block and
    goes on with the answer once it is spent.
    """

    conversation: Conversation
    max_tokens: int | None = None
    reasoning_budget: int | None = None
    assistant_prefix: str | None = None
    temperature: float | None = None


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

    async def aclose(self) -> None: ...


class Engine(Protocol):
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
