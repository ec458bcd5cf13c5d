"""``VllmEngine``: Step-Audio-R1 on vLLM replicas; ``VllmSession``: one client's requests.

A stream is one ``/chat/completions`` request whose text is split into reasoning and
answer at ``</think>``, and the answer into reply text and function calls at
``<tool_call>`` (``think_split``, ``tool_split``). When ``tool_choice`` requires a call
(``required``, or a named function), the model reasons as usual; where its reply would start,
the stream is closed and a second request continues the message with the opening of a call
(``<tool_call>function\n``, plus the function's name when one is named), so the reply is
the call. A request that fails before its first token (refused, 5xx, cut off, an error
event such as vLLM's retryable multimodal-cache miss) is tried once more at once: on another
usable replica, or on the same one when it is the only one; the retry is counted in the
stream's ``EngineUsage``. After the first token a failure ends the stream with an
``EngineError``: tokens have reached the client. Every request carries the session's
routing header (``x-session-id``), so a router in front of several vLLM servers keeps the
session on one. ``prefill``
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
from typing import ClassVar

import httpx

from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.base import (
    AnswerDelta,
    Continuation,
    EngineCapabilities,
    EngineError,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    EngineUsage,
    ReasoningDelta,
    TranscriptionHints,
    UsageTally,
)
from realtime.engines.step_audio import call_opening
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
from realtime.engines.vllm.think_split import ThinkSplitter
from realtime.engines.vllm.tool_split import ReplyEvent, ToolCallSplitter

log = logging.getLogger(__name__)

# A request that fails before its first token is tried this many more times.
_MAX_RETRIES = 1
TRANSCRIBE_INSTRUCTIONS = (
    "Transcribe the user's speech exactly as spoken, in the language spoken. "
    "Write only the transcript."
)
# Speech runs at 2-4 words a second; a transcript's tokens stay well under this.
_TRANSCRIPT_TOKENS_PER_S = 8


@dataclass
class _Retries:
    """How many times one request was tried again."""

    count: int = 0


def _splitter_for(request: EngineRequest) -> ThinkSplitter:
    continuation = request.continuation
    if continuation is None:
        return ThinkSplitter()
    return ThinkSplitter(
        reasoning=not continuation.reasoning_closed,
        fresh_reasoning=not continuation.reasoning.strip(),
        fresh_answer=not continuation.reply.strip(),
    )


def _forced_call(request: EngineRequest) -> str | None:
    """The opening of the call the request's ``tool_choice`` requires, if it requires one."""
    choice = request.tool_choice
    if not request.offered_tools or choice.mode not in ("required", "function"):
        return None
    return call_opening(choice.function)


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
        """The request's deltas: reasoning, reply text and function calls, then usage."""
        opening = _forced_call(request)
        if opening is None:
            async for event in self._generate(request):
                yield event
            return
        usage = UsageTally()
        continuation = request.continuation
        if request.starts_in_reasoning:
            reasoning: list[str] = []
            async for event in usage.relay(self._generate(request, until_reply=True)):
                if isinstance(event, ReasoningDelta):
                    reasoning.append(event.text)
                yield event
            before = continuation.reasoning if continuation is not None else ""
            continuation = Continuation(before + "".join(reasoning), reasoning_closed=True)
        forced = dataclasses.replace(request, continuation=continuation)
        async for event in usage.relay(self._generate(forced, call_opening=opening)):
            yield event
        if usage.total is not None:
            yield usage.total

    async def _generate(
        self,
        request: EngineRequest,
        *,
        until_reply: bool = False,
        call_opening: str = "",
        side_request: bool = False,
    ) -> AsyncGenerator[EngineEvent, None]:
        """One ``/chat/completions`` request. ``until_reply``: only its reasoning, closed
        where the reply starts; ``call_opening``: text put after the continuation for the
        model to go on from (the opening of a call); ``side_request``: not about the session's
        conversation (a transcription), which keeps its encoded audio."""
        splitter = _splitter_for(request)
        calls = ToolCallSplitter()
        calls.feed(call_opening, 0)
        server_splits = False
        server_reasoning_tokens = 0
        usage: ChatUsage | None = None
        finish_reason: str | None = None
        seen = 0
        retries = _Retries()
        chunks_of = self._chunks(request, retries, call_opening, side_request)
        async with contextlib.aclosing(chunks_of) as chunks:
            async for chunk in chunks:
                seen += chunk.tokens
                usage = chunk.usage or usage
                finish_reason = chunk.finish_reason or finish_reason
                if chunk.reasoning:
                    server_splits = True
                    server_reasoning_tokens += max(1, chunk.tokens)
                    yield ReasoningDelta(chunk.reasoning, max(1, chunk.tokens))
                if chunk.content:
                    split: list[ReasoningDelta | AnswerDelta] = (
                        [AnswerDelta(chunk.content, max(1, chunk.tokens))]
                        if server_splits
                        else splitter.feed(chunk.content, chunk.tokens)
                    )
                    for event in self._reply_events(split, calls):
                        if not until_reply or isinstance(event, ReasoningDelta):
                            yield event
                    if until_reply and (server_splits or not splitter.in_reasoning):
                        break
        for event in self._reply_events(splitter.finish(), calls):
            yield event
        if not until_reply:
            for reply_event in calls.finish(cut_short=finish_reason == "length"):
                yield reply_event
        completion = seen if usage is None else max(usage.completion_tokens, seen)
        yield EngineUsage(
            prompt_tokens=usage.prompt_tokens if usage is not None else 0,
            completion_tokens=completion,
            reasoning_tokens=splitter.reasoning_tokens + server_reasoning_tokens,
            cached_prompt_tokens=usage.cached_prompt_tokens if usage is not None else 0,
            retries=retries.count,
        )

    @staticmethod
    def _reply_events(
        events: list[ReasoningDelta | AnswerDelta], calls: ToolCallSplitter
    ) -> list[ReasoningDelta | ReplyEvent]:
        """Reasoning as it is; reply text through the function-call splitter."""
        out: list[ReasoningDelta | ReplyEvent] = []
        for event in events:
            if isinstance(event, AnswerDelta):
                out.extend(calls.feed(event.text, event.tokens))
            else:
                out.append(event)
        return out

    async def _chunks(
        self,
        request: EngineRequest,
        retries: _Retries,
        reply_suffix: str = "",
        side_request: bool = False,
    ) -> AsyncGenerator[ChatChunk, None]:
        """The request's stream from the pinned replica, tried once more if it fails before
        its first token."""
        body = await asyncio.to_thread(self._encode, request, False, reply_suffix, not side_request)
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
                if received or not exc.retryable or retries.count >= _MAX_RETRIES:
                    raise
                retries.count += 1
                failed.append(replica)
                log.warning("%s; trying again", exc)

    async def transcribe(
        self, item: UserAudioItem, hints: TranscriptionHints
    ) -> AsyncGenerator[str, None]:
        """Step-Audio-R1 transcribes the turn itself (it is an ASR-capable audio model): a
        request of its own beside the reply, its reasoning block closed so the answer is the
        transcript."""
        instructions = TRANSCRIBE_INSTRUCTIONS
        if hints.language:
            instructions += f" The speech is in the language with ISO-639-1 code {hints.language}."
        if hints.prompt:
            instructions += f" Context: {hints.prompt}"
        request = EngineRequest(
            Conversation(instructions, (item,)),
            continuation=Continuation(reasoning_closed=True),
            max_tokens=int(item.duration_s * _TRANSCRIPT_TOKENS_PER_S) + 16,
            temperature=0.0,
        )
        async for event in self._generate(request, side_request=True):
            if isinstance(event, AnswerDelta):
                yield event.text

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

    def _encode(
        self,
        request: EngineRequest,
        prefill: bool,
        reply_suffix: str = "",
        conversation_request: bool = True,
    ) -> bytes:
        """The request body as JSON bytes (WAV and base64 work: runs in a worker thread).
        A request about the session's conversation fits it to the history window (which
        remembers where it cut) and forgets the encoded audio of items that left it; a side
        request (a transcription) touches neither."""
        fitted = request
        if conversation_request:
            conversation = self._history.fit(request.conversation)
            fitted = dataclasses.replace(request, conversation=conversation)
            self._audio.retain(fitted.conversation)
        body = chat_body(
            fitted, self._options, self._audio, prefill=prefill, reply_suffix=reply_suffix
        )
        return encode_body(body)

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

    capabilities: ClassVar[EngineCapabilities] = EngineCapabilities(
        continuation=True, tools=True, transcription=True
    )

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
