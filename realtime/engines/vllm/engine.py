"""``VllmEngine``: Step-Audio-R1 on vLLM replicas; ``VllmSession``: one client's requests.

A stream is one ``/chat/completions`` request whose text is split into reasoning and
answer at ``</think>``. A request that fails before its first chunk (refused, 5xx, cut off,
an error event such as vLLM's retryable multimodal-cache miss) is tried once more at once:
on another usable replica, or on the same one when it is the only one; the retry is counted
in the stream's ``EngineUsage``. After the first chunk a failure ends the stream with an
``EngineError``: tokens have reached the client. Every request carries the session's
routing header (``x-session-id``), so a router in front of several vLLM servers keeps the
session on one. The reasoning budget is enforced here: once the stream has written
``reasoning_budget`` reasoning tokens it is closed, and a second request continues the
assistant message ``<think>`` + the reasoning + ``</think>`` for the answer. ``prefill``
sends the prompt with ``max_tokens: 1`` so that vLLM's prefix cache holds its KV when the
turn's real request comes (listen while thinking).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import uuid
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass

import httpx

from realtime.engines.base import (
    AnswerDelta,
    EngineError,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    EngineUsage,
    ReasoningDelta,
)
from realtime.engines.vllm.client import (
    ReplicaRequestError,
    StreamTimeouts,
    post_prefill,
    stream_chunks,
)
from realtime.engines.vllm.history import HistoryWindow
from realtime.engines.vllm.options import VllmOptions
from realtime.engines.vllm.prompt import AudioPartCache, chat_body, encode_body
from realtime.engines.vllm.replicas import NoHealthyReplica, Replica, ReplicaSet
from realtime.engines.vllm.sse import ChatChunk, ChatUsage
from realtime.engines.vllm.think_split import (
    THINK_CLOSE,
    THINK_OPEN,
    ThinkSplitter,
    answer_is_fresh,
    reasoning_is_open,
)

log = logging.getLogger(__name__)

# A request that fails before its first token is tried this many more times.
_MAX_RETRIES = 1


def reasoning_is_fresh(assistant_prefix: str | None) -> bool:
    """Whether the reasoning block has no text yet (the prefix ends right after ``<think>``)."""
    if assistant_prefix is None:
        return True
    opened = assistant_prefix.rfind(THINK_OPEN)
    return opened >= 0 and not assistant_prefix[opened + len(THINK_OPEN) :].strip()


def closed_reasoning_prefix(assistant_prefix: str | None, reasoning: str) -> str:
    """The assistant message so far with its reasoning block closed, to continue as answer."""
    opened = assistant_prefix if assistant_prefix is not None else f"{THINK_OPEN}\n"
    text = opened + reasoning
    newline = "" if text.endswith("\n") else "\n"
    return f"{text}{newline}{THINK_CLOSE}\n\n"


@dataclass
class _StreamState:
    """What one turn's requests have produced so far."""

    reasoning: list[str] = dataclasses.field(default_factory=list)
    reasoning_tokens: int = 0  # handed out, against the budget
    generated_reasoning_tokens: int = 0  # written by the model, for the usage report
    completion_tokens: int = 0
    prompt_tokens: int = 0
    cached_prompt_tokens: int = 0
    budget_spent: bool = False
    retries: int = 0

    def add_usage(self, usage: ChatUsage | None, seen_tokens: int) -> None:
        """One request's counts: its last usage report, or what was seen of it."""
        if usage is None:
            self.completion_tokens += seen_tokens
            return
        self.prompt_tokens += usage.prompt_tokens
        self.cached_prompt_tokens += usage.cached_prompt_tokens
        self.completion_tokens += max(usage.completion_tokens, seen_tokens)

    def usage(self) -> EngineUsage:
        return EngineUsage(
            prompt_tokens=self.prompt_tokens,
            completion_tokens=self.completion_tokens,
            reasoning_tokens=self.generated_reasoning_tokens,
            cached_prompt_tokens=self.cached_prompt_tokens,
            retries=self.retries,
        )


class VllmSession:
    """One client's requests, pinned to one replica while it stays healthy."""

    def __init__(self, engine: VllmEngine) -> None:
        self._engine = engine
        self._options = engine.options
        self._audio = AudioPartCache()
        self._history = HistoryWindow(engine.options.max_prompt_tokens)
        self._pinned: Replica | None = None
        self._pin_lock = asyncio.Lock()
        self._closed = False
        header = engine.options.session_header
        self.routing_id = uuid.uuid4().hex
        self._headers = {header: self.routing_id} if header else {}

    @property
    def replica(self) -> Replica | None:
        return self._pinned

    # -- requests ----------------------------------------------------------------------

    async def stream(self, request: EngineRequest) -> AsyncGenerator[EngineEvent, None]:
        state = _StreamState()
        if request.reasoning_budget == 0 and reasoning_is_open(request.assistant_prefix):
            state.budget_spent = True
        else:
            async for event in self._generate(request, state):
                yield event
        if state.budget_spent:
            async for answer in self._answer_after_budget(request, state):
                yield answer
        yield state.usage()

    async def _answer_after_budget(
        self, request: EngineRequest, state: _StreamState
    ) -> AsyncGenerator[ReasoningDelta | AnswerDelta, None]:
        remaining = None
        if request.max_tokens is not None:
            remaining = request.max_tokens - state.completion_tokens
            if remaining <= 0:
                return
        answer = dataclasses.replace(
            request,
            assistant_prefix=closed_reasoning_prefix(
                request.assistant_prefix, "".join(state.reasoning)
            ),
            max_tokens=remaining,
            reasoning_budget=None,
        )
        async for event in self._generate(answer, state):
            yield event

    async def _generate(
        self, request: EngineRequest, state: _StreamState
    ) -> AsyncGenerator[ReasoningDelta | AnswerDelta, None]:
        """One request's deltas; stops early (``state.budget_spent``) at the budget."""
        prefix = request.assistant_prefix
        splitter = ThinkSplitter(
            reasoning=reasoning_is_open(prefix),
            fresh_reasoning=reasoning_is_fresh(prefix),
            fresh_answer=answer_is_fresh(prefix),
        )
        budget = request.reasoning_budget
        server_splits = False
        server_reasoning_tokens = 0
        usage: ChatUsage | None = None
        seen = 0
        try:
            async with contextlib.aclosing(self._chunks(request, state)) as chunks:
                async for chunk in chunks:
                    seen += chunk.tokens
                    usage = chunk.usage or usage
                    events: list[ReasoningDelta | AnswerDelta] = []
                    if chunk.reasoning:
                        server_splits = True
                        server_reasoning_tokens += max(1, chunk.tokens)
                        events.append(ReasoningDelta(chunk.reasoning, max(1, chunk.tokens)))
                    if chunk.content:
                        if server_splits:
                            events.append(AnswerDelta(chunk.content, max(1, chunk.tokens)))
                        else:
                            events.extend(splitter.feed(chunk.content, chunk.tokens))
                    for event in events:
                        if not self._within_budget(event, budget, state):
                            return
                        yield event
                        if budget is not None and state.reasoning_tokens >= budget:
                            state.budget_spent = splitter.in_reasoning and not server_splits
                            if state.budget_spent:
                                return
            for event in splitter.finish():
                if not self._within_budget(event, budget, state):
                    return
                yield event
        finally:
            state.add_usage(usage, seen)
            state.generated_reasoning_tokens += splitter.reasoning_tokens + server_reasoning_tokens

    @staticmethod
    def _within_budget(
        event: ReasoningDelta | AnswerDelta, budget: int | None, state: _StreamState
    ) -> bool:
        """Counts a reasoning delta; False (budget spent) when it would go over the budget."""
        if not isinstance(event, ReasoningDelta):
            return True
        if budget is not None and state.reasoning_tokens + event.tokens > budget:
            state.budget_spent = True
            return False
        state.reasoning_tokens += event.tokens
        state.reasoning.append(event.text)
        return True

    async def _chunks(
        self, request: EngineRequest, state: _StreamState
    ) -> AsyncGenerator[ChatChunk, None]:
        """The request's stream from the pinned replica, tried once more if it fails before
        its first chunk."""
        body = await asyncio.to_thread(self._encode, request, False)
        engine = self._engine
        failed: list[Replica] = []
        while True:
            replica = await self._replica(failed)
            received = False
            try:
                async with contextlib.aclosing(
                    stream_chunks(engine.http, replica.url, body, engine.timeouts, self._headers)
                ) as chunks:
                    async for chunk in chunks:
                        if not received and chunk.has_tokens:
                            received = True
                            engine.replicas.record_success(replica)
                        yield chunk
                return
            except ReplicaRequestError as exc:
                engine.replicas.record_failure(replica, exc)
                if received or not exc.retryable or state.retries >= _MAX_RETRIES:
                    raise
                state.retries += 1
                failed.append(replica)
                log.warning("%s; trying again", exc)

    async def prefill(self, request: EngineRequest) -> None:
        body = await asyncio.to_thread(self._encode, request, True)
        replica = await self._replica()
        replicas = self._engine.replicas
        try:
            await post_prefill(
                self._engine.http, replica.url, body, self._options.timeout_s, self._headers
            )
        except ReplicaRequestError as exc:
            replicas.record_failure(replica, exc)
            raise
        replicas.record_success(replica)

    def _encode(self, request: EngineRequest, prefill: bool) -> bytes:
        """The request body as JSON bytes (WAV and base64 work: runs in a worker thread)."""
        fitted = dataclasses.replace(request, conversation=self._history.fit(request.conversation))
        self._audio.retain(fitted.conversation)
        return encode_body(chat_body(fitted, self._options, self._audio, prefill=prefill))

    # -- replica pinning ---------------------------------------------------------------

    async def _replica(self, failed: list[Replica] | None = None) -> Replica:
        """The pinned replica while it is healthy and has not just failed; else a new pin."""
        if self._closed:
            raise EngineError("the engine session is closed")
        failed = failed or []
        replicas = self._engine.replicas
        async with self._pin_lock:
            current = self._pinned
            if current is not None and current not in failed and not replicas.should_move(current):
                return current
            if current is not None:
                replicas.release(current)
                self._pinned = None
            try:
                chosen = await replicas.acquire(failed)
            except NoHealthyReplica as exc:
                raise EngineError(str(exc)) from None
            if current is not None and chosen is not current:
                log.info("session moved from vLLM replica %s to %s", current.url, chosen.url)
            self._pinned = chosen
            return chosen

    async def aclose(self) -> None:
        self._closed = True
        if self._pinned is not None:
            self._engine.replicas.release(self._pinned)
            self._pinned = None


class VllmEngine:
    """Step-Audio-R1 served by one or more vLLM replicas (``VllmOptions.urls``)."""

    def __init__(self, options: VllmOptions) -> None:
        self.options = options
        self.info = EngineInfo(name="vllm", model=options.model)
        self.timeouts = StreamTimeouts(first_token_s=options.timeout_s, stall_s=options.timeout_s)
        self._http: httpx.AsyncClient | None = None
        self._replicas: ReplicaSet | None = None

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            raise EngineError("the vllm engine is not started")
        return self._http

    @property
    def replicas(self) -> ReplicaSet:
        if self._replicas is None:
            raise EngineError("the vllm engine is not started")
        return self._replicas

    async def start(self) -> None:
        options = self.options
        self._http = httpx.AsyncClient(
            # Read timeouts are per stream (first token, stalls): see StreamTimeouts.
            timeout=httpx.Timeout(
                connect=options.connect_timeout_s,
                read=None,
                write=options.timeout_s,
                pool=options.connect_timeout_s,
            ),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=64),
        )
        self._replicas = ReplicaSet(
            options.urls,
            self._http,
            health_interval_s=options.health_interval_s,
            health_timeout_s=options.health_timeout_s,
            breaker=options.breaker,
            limits=options.load_limits,
        )
        await self._replicas.start()
        if not self._replicas.healthy():
            log.warning("%s; requests will wait for one", self._replicas.describe_down())

    async def aclose(self) -> None:
        if self._replicas is not None:
            await self._replicas.aclose()
        if self._http is not None:
            await self._http.aclose()

    def open_session(self) -> VllmSession:
        return VllmSession(self)

    def admission_problem(self) -> str | None:
        if self._replicas is None:
            return None
        return self._replicas.admission_problem()

    def load_report(self) -> Mapping[str, Mapping[str, float]]:
        return self._replicas.load_report() if self._replicas is not None else {}
