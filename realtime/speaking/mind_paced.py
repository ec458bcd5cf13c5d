"""Mind-Paced Speaking (StepFun, arXiv 2510.09592): speak the reply while the model reasons.

Two kinds of request run on the same engine session at the same time:

- the **formulation** stream is the turn's plain request: it writes the reasoning. Its
  reasoning text goes to the client as it comes. It ends when the model closes its
  reasoning block (the first answer token: the stream is closed there, its answer is not
  used), when the reasoning budget (``EngineRequest.reasoning_budget``) is spent (the
  policy closes it), or when the stream itself ends.
- **articulation** requests continue the assistant message with the reasoning so far,
  closed, and the reply so far (``EngineRequest.continuation``) and write the next reply
  segment, at most Tr tokens (``SpeakingParams.articulation_tokens``). One is
  sent once the reasoning has grown by Tc tokens (``formulation_tokens``; the first after
  ``first_formulation_tokens``) since the previous one, and only while less than the
  pacing bound of reply audio waits ahead of playback. Once the reasoning is over, a
  final articulation (no Tr cap) finishes the reply.

``speak-first`` is the same with the first articulation sent at once, on an empty
reasoning block, so that no reasoning token stands before the first word.

Reply text streams to TTS token by token as articulations write it, in order (only one
articulation runs at a time). An articulation that ends early (the model's end of turn
before Tr tokens) means "nothing more to say on the reasoning so far": the reply is not
closed, the next articulation (after the next Tc reasoning tokens) may go on, and the final
articulation, which sees all the reasoning, has the last word. Reply text once yielded is
never taken back.

Pacing: the responder caps the reply audio queued ahead of playback at
``max_buffered_audio_ms`` and keeps that queue within a frame or two of the cap while TTS
still has text to speak. An articulation therefore starts only when the queued audio is
below the cap by ``PACING_MARGIN_MS``, i.e. once TTS has caught up with the text, so the
reply never runs more than the cap plus one segment ahead of what the listener heard.

Function calls: the model writes a call in its reply, so a call comes from an articulation
(the formulation stream ends at the close of the reasoning block, before any reply). The
call goes to the responder, the articulation stream runs to its end (a reply may hold
several calls), and then the turn is over: no further articulation starts and the
formulation stream is closed. Reply text written before the call has been spoken; the call
never is. The client runs the function and sends its output with a new ``response.create``:
that response is a new turn whose requests carry the call and its result in the
conversation, so its articulations resume the reply with the result in view. A capped
articulation cut inside a call (``max_tokens``) drops the partial call; the next
articulation writes it again.

Closing the policy's generator (barge-in, cancel) cancels both tasks, which close every
engine stream they hold. Usage is the sum over all the turn's requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
from collections.abc import AsyncGenerator, Coroutine
from typing import Any

from realtime.engines.base import (
    AnswerDelta,
    Continuation,
    EngineRequest,
    EngineSession,
    EngineUsage,
    InputTranscription,
    InvalidToolCall,
    ReasoningDelta,
    ToolCall,
    add_usage,
)
from realtime.engines.budget import stream_within_budget
from realtime.speaking.base import (
    PlaybackGauge,
    ReasoningText,
    ReplyPhase,
    ReplyText,
    SpeakEvent,
    SpeakingParams,
)
from realtime.speaking.continuation import ReplyJoiner
from realtime.telemetry.timings import TurnTimings

PACING_MARGIN_MS = 100.0
"""How far below the buffered-audio cap the queue must be before an articulation starts."""


class MindPacedPolicy:
    """``mps`` (first articulation after the first formulation segment) or ``speak-first``."""

    def __init__(self, *, speak_first: bool = False) -> None:
        self.speak_first = speak_first
        self.name = "speak-first" if speak_first else "mps"

    def run(
        self,
        engine: EngineSession,
        request: EngineRequest,
        timings: TurnTimings,
        playback: PlaybackGauge,
        params: SpeakingParams | None = None,
    ) -> AsyncGenerator[SpeakEvent, None]:
        turn = _MindPacedTurn(
            engine, request, timings, playback, params or SpeakingParams(), self.speak_first
        )
        return turn.events()


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: BaseException


class _Finished:
    """The final articulation is done: the reply is complete."""


class _MindPacedTurn:
    """The state of one turn: the reasoning so far, the reply so far, and the output queue."""

    def __init__(
        self,
        engine: EngineSession,
        request: EngineRequest,
        timings: TurnTimings,
        playback: PlaybackGauge,
        params: SpeakingParams,
        speak_first: bool,
    ) -> None:
        self._engine = engine
        self._request = request
        self._timings = timings
        self._playback = playback
        self._params = params
        self._speak_first = speak_first
        self._reasoning: list[str] = []
        self._reasoning_tokens = 0
        self._reasoning_over = False
        self._called_tool = False
        self._progress = asyncio.Event()
        self._reply = ReplyJoiner()
        self._usage: EngineUsage | None = None
        self._out: asyncio.Queue[SpeakEvent | _Failed | _Finished] = asyncio.Queue()

    async def events(self) -> AsyncGenerator[SpeakEvent, None]:
        tasks = [
            asyncio.create_task(self._guard(self._formulate()), name="mps-formulation"),
            asyncio.create_task(self._guard(self._articulate()), name="mps-articulation"),
        ]
        try:
            while not isinstance(item := await self._out.get(), _Finished):
                if isinstance(item, _Failed):
                    raise item.error
                yield item
            while not self._out.empty():
                late = self._out.get_nowait()
                if isinstance(late, _Failed):
                    raise late.error
                if not isinstance(late, _Finished):
                    yield late
            if self._usage is not None:
                yield self._usage
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _guard(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as error:
            self._out.put_nowait(_Failed(error))

    # -- formulation -----------------------------------------------------------------------

    async def _formulate(self) -> None:
        try:
            self._timings.mark("engine_request_sent")
            seen = 0
            usage: EngineUsage | None = None
            formulation = stream_within_budget(self._engine, self._request, then_answer=False)
            async with contextlib.aclosing(formulation) as stream:
                async for event in stream:
                    if isinstance(event, ReasoningDelta):
                        self._timings.mark("first_reasoning_token")
                        self._reasoning.append(event.text)
                        self._reasoning_tokens += event.tokens
                        seen += event.tokens
                        self._out.put_nowait(ReasoningText(event.text))
                        self._progress.set()
                    elif isinstance(event, AnswerDelta | ToolCall | InvalidToolCall):
                        break  # `</think>` has passed: the reasoning is over
                    elif isinstance(event, InputTranscription):
                        self._out.put_nowait(event)
                    elif isinstance(event, EngineUsage):
                        usage = event
            self._count(usage, completion=seen, reasoning=seen)
        finally:
            self._reasoning_over = True
            self._progress.set()

    # -- articulation ----------------------------------------------------------------------

    async def _articulate(self) -> None:
        params = self._params
        next_at = 0 if self._speak_first else params.first_segment_tokens
        while True:
            while not (self._reasoning_over or self._reasoning_tokens >= next_at):
                self._progress.clear()
                await self._progress.wait()
            await self._paced()
            final = self._reasoning_over
            reasoning_tokens = self._reasoning_tokens
            cap = None if final else params.articulation_tokens
            remaining = self._tokens_left()
            if remaining is not None:
                if remaining <= 0:
                    break
                cap = remaining if cap is None else min(cap, remaining)
            await self._articulation("".join(self._reasoning), cap, final=final)
            if final or self._called_tool:
                break
            next_at = reasoning_tokens + params.formulation_tokens
        self._out.put_nowait(_Finished())

    async def _paced(self) -> None:
        bound = self._params.max_buffered_audio_ms
        await self._playback.wait_buffered_below(max(1.0, bound - PACING_MARGIN_MS))

    def _tokens_left(self) -> int | None:
        """What ``max_tokens`` leaves for the reply (reasoning counts against it too)."""
        if self._request.max_tokens is None:
            return None
        return self._request.max_tokens - self._reasoning_tokens - self._reply.tokens

    async def _articulation(self, reasoning: str, max_tokens: int | None, *, final: bool) -> None:
        request = dataclasses.replace(
            self._request,
            continuation=Continuation(reasoning, self._reply.text, reasoning_closed=True),
            max_tokens=max_tokens,
            reasoning_budget=None,
        )
        self._timings.mark("engine_request_sent")
        seen = 0
        usage: EngineUsage | None = None
        async with contextlib.aclosing(self._engine.stream(request)) as stream:
            async for event in stream:
                if isinstance(event, AnswerDelta):
                    self._timings.mark("first_answer_token")
                    seen += event.tokens
                    if text := self._reply.add(event.text, event.tokens):
                        phase: ReplyPhase = "final_answer" if final else "commentary"
                        self._out.put_nowait(ReplyText(text, phase))
                elif isinstance(event, ToolCall | InvalidToolCall):
                    self._called_tool = True
                    self._out.put_nowait(event)
                elif isinstance(event, EngineUsage):
                    usage = event
                # Reasoning from a continuation whose prefix closed the reasoning block, or a
                # transcription the formulation stream already reports, is not spoken.
        self._count(usage, completion=seen, reasoning=0)

    def _count(self, usage: EngineUsage | None, *, completion: int, reasoning: int) -> None:
        """A stream's usage, or what was seen of it when it was closed before reporting."""
        if usage is None:
            usage = EngineUsage(completion_tokens=completion, reasoning_tokens=reasoning)
        self._usage = add_usage(self._usage, usage)
