"""One response, from engine to outbox: speaking policy -> reply text -> TTS -> frames.

Function calls the model makes are collected (``calls``) for the session to hand to the
client once the reply before them is out; their text never reaches TTS. A call the engine
could not read, or of a function that was not offered, is reported with an ``error`` event
and not made; the response goes on.

The responder only produces. Cancelling is the session's job: it marks the response stale
in the outbox (audio stops there) and cancels the responder's task (engine streams and TTS
processes are closed by their ``finally`` blocks).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Literal

from realtime import events as ev
from realtime.conversation import AssistantItem
from realtime.engines.base import (
    EngineError,
    EngineRequest,
    EngineSession,
    EngineUsage,
    InputTranscription,
    InvalidToolCall,
    ToolCall,
)
from realtime.protocol.session_config import AudioFormat, PcmFormat
from realtime.session.outbox import AudioFrame, Outbox
from realtime.session.truncation import SpokenSegment, spoken_text
from realtime.speaking.base import ReasoningText, ReplyText, SpeakingParams, SpeakingPolicy
from realtime.telemetry.timings import TurnTimings
from tokenizer.framing import FrameSplitter
from tokenizer.resample import StreamResampler
from tts.base import TextToSpeech, TtsError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResponsePlan:
    """Everything fixed when the response is created."""

    response_id: str
    item: AssistantItem
    request: EngineRequest
    speaks: bool
    output_rate: int
    frame_ms: int
    max_buffered_ms: float
    voice: str | None = None
    speed: float = 1.0
    speaking: SpeakingParams = field(default_factory=SpeakingParams)
    parallel_tool_calls: bool = True
    output_format: AudioFormat = field(default_factory=PcmFormat)
    """What the transport encodes the audio as (at ``output_rate``)."""


@dataclass
class ResponseOutcome:
    status: Literal["completed", "failed"]
    error_code: str | None = None
    error_message: str | None = None
    usage: EngineUsage | None = None


@dataclass
class _ReplyState:
    full_text: list[str] = field(default_factory=list)
    commentary: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    segments: list[SpokenSegment] = field(default_factory=list)
    transcript_sent: list[str] = field(default_factory=list)

    def reply_text(self) -> str:
        return " ".join("".join(self.full_text).split())


class _OutboxGauge:
    def __init__(self, outbox: Outbox, response_id: str) -> None:
        self._outbox = outbox
        self._response_id = response_id

    def buffered_ms(self) -> float:
        return self._outbox.buffered_ms(self._response_id)

    async def wait_buffered_below(self, ms: float) -> None:
        await self._outbox.wait_buffered_below(self._response_id, ms)


class Responder:
    def __init__(
        self,
        plan: ResponsePlan,
        *,
        engine: EngineSession,
        policy: SpeakingPolicy,
        tts: TextToSpeech,
        outbox: Outbox,
        timings: TurnTimings,
        on_transcription: Callable[[InputTranscription], None],
        open_message: Callable[[], None] = lambda: None,
    ) -> None:
        """``open_message()`` is called once, before the reply's first text or speech."""
        self.plan = plan
        self._engine = engine
        self._policy = policy
        self._tts = tts
        self._outbox = outbox
        self.timings = timings
        self._on_transcription = on_transcription
        self._open_message = open_message
        self.has_message = False
        """Whether the reply has a message item: text or speech, or no function call."""
        self._state = _ReplyState()
        self._usage: EngineUsage | None = None
        self.calls: list[ToolCall] = []

    # -- what the session reads back ---------------------------------------------------

    @property
    def reasoning(self) -> str:
        return "".join(self._state.reasoning)

    def reply_text(self) -> str:
        return self._state.reply_text()

    @property
    def commentary_words(self) -> int:
        """How many of the reply's first words were said before the reasoning was over."""
        return len("".join(self._state.commentary).split())

    def heard_text(self) -> str:
        """The reply's text cut to the audio the listener heard (for barge-in): what left the
        outbox, or less where the transport reports what was played."""
        if not self.plan.speaks:
            return self.reply_text()
        delivery = self._outbox.delivery(self.plan.response_id)
        return spoken_text(self._state.segments, delivery.heard_ms_by_segment())

    @property
    def usage(self) -> EngineUsage | None:
        return self._usage

    # -- running -------------------------------------------------------------------------

    async def run(self) -> ResponseOutcome:
        reply_queue: asyncio.Queue[str | None] = asyncio.Queue()
        engine_failure: EngineError | None = None
        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(self._think(reply_queue))
                if self.plan.speaks:
                    group.create_task(self._speak(reply_queue))
                else:
                    group.create_task(self._write(reply_queue))
        except* EngineError as failures:
            engine_failure = failures.exceptions[0]  # type: ignore[assignment]
        if engine_failure is not None:
            return ResponseOutcome("failed", "engine_error", str(engine_failure), self._usage)
        self._finish_in_order()
        return ResponseOutcome("completed", usage=self._usage)

    async def _think(self, reply_queue: asyncio.Queue[str | None]) -> None:
        plan = self.plan
        gauge = _OutboxGauge(self._outbox, plan.response_id)
        events = self._policy.run(
            self._engine, plan.request, self.timings, gauge, params=plan.speaking
        )
        try:
            async for event in events:
                if isinstance(event, ReasoningText):
                    self._state.reasoning.append(event.text)
                    self._outbox.send_now(
                        ev.ReasoningDelta(plan.response_id, plan.item.id, event.text),
                        plan.response_id,
                    )
                elif isinstance(event, ReplyText):
                    if event.text:
                        self.timings.mark("first_reply_text")
                        self._state.full_text.append(event.text)
                        if event.phase == "commentary":
                            self._state.commentary.append(event.text)
                        reply_queue.put_nowait(event.text)
                elif isinstance(event, ToolCall):
                    self._take_call(event)
                elif isinstance(event, InvalidToolCall):
                    self._refuse_call(event.name, event.reason)
                elif isinstance(event, InputTranscription):
                    self._on_transcription(event)
                elif isinstance(event, EngineUsage):
                    self._usage = event
                    self.timings.engine_retries += event.retries
        finally:
            await events.aclose()
            reply_queue.put_nowait(None)
        if self._state.reasoning:
            self._outbox.send_now(
                ev.ReasoningDone(plan.response_id, plan.item.id, self.reasoning),
                plan.response_id,
            )

    def _take_call(self, call: ToolCall) -> None:
        offered = {tool.name for tool in self.plan.request.offered_tools}
        if call.name not in offered:
            self._refuse_call(call.name, "it is not one of the tools offered to this response")
            return
        if self.calls and not self.plan.parallel_tool_calls:
            self._refuse_call(
                call.name, "parallel_tool_calls is false and this reply has already made a call"
            )
            return
        self.calls.append(call)

    def _refuse_call(self, name: str, reason: str) -> None:
        log.warning("response %s: unusable function call %r: %s", self.plan.response_id, name,
                    reason)  # fmt: skip
        called = f" of '{name}'" if name else ""
        self._outbox.send_now(
            ev.ErrorReported.server(
                "invalid_tool_call",
                f"the model wrote a function call{called} that was not made: {reason}",
            )
        )

    async def _write(self, reply_queue: asyncio.Queue[str | None]) -> None:
        plan = self.plan
        while (text := await reply_queue.get()) is not None:
            self._open()
            self._outbox.enqueue(
                plan.response_id, ev.TextDelta(plan.response_id, plan.item.id, text)
            )

    async def _speak(self, reply_queue: asyncio.Queue[str | None]) -> None:
        try:
            await self._synthesize(_drain(reply_queue))
        except TtsError as failure:
            log.warning("TTS failed mid-reply: %s", failure)
            self._outbox.send_now(
                ev.ErrorReported.server("tts_error", f"speech synthesis failed: {failure}"),
            )
            while await reply_queue.get() is not None:
                pass
            self._send_unspoken_text()

    async def _synthesize(self, texts: AsyncIterator[str]) -> None:
        plan = self.plan
        # Reply speech needs no more than soxr's MQ (passband to ~91% of Nyquist), which
        # costs half of HQ per frame for every session that is speaking.
        resampler = StreamResampler(self._tts.sample_rate, plan.output_rate, quality="MQ")
        splitter = FrameSplitter(plan.output_rate * plan.frame_ms // 1000)
        speech = self._tts.speak(texts, voice=plan.voice, speed=plan.speed)
        segment = -1
        try:
            async for chunk in speech:
                if chunk.segment_index != segment:
                    segment = chunk.segment_index
                    self._open_segment(segment, chunk.segment_text)
                spoken = self._state.segments[segment]
                if len(chunk.pcm):
                    self.timings.mark("first_tts_audio")
                    spoken.produced_ms += 1000.0 * len(chunk.pcm) / self._tts.sample_rate
                    for frame in splitter.push(resampler.process(chunk.pcm)):
                        if not await self._queue_frame(frame, segment):
                            return
                if chunk.segment_end:
                    spoken.complete = True
        finally:
            await speech.aclose()
        for frame in splitter.push(resampler.flush()):
            await self._queue_frame(frame, max(segment, 0))
        tail = splitter.flush(pad=True)
        if tail is not None:
            await self._queue_frame(tail, max(segment, 0))

    def _open_segment(self, index: int, text: str) -> None:
        while len(self._state.segments) <= index:
            self._state.segments.append(SpokenSegment(text=""))
        self._state.segments[index].text = text
        delta = text if not self._state.transcript_sent else " " + text
        self._state.transcript_sent.append(text)
        plan = self.plan
        self._open()
        self._outbox.enqueue(
            plan.response_id, ev.AudioTranscriptDelta(plan.response_id, plan.item.id, delta)
        )

    async def _queue_frame(self, pcm: object, segment: int) -> bool:
        plan = self.plan
        frame = AudioFrame(plan.response_id, plan.item.id, pcm, segment)  # type: ignore[arg-type]
        return await self._outbox.enqueue_audio(frame, plan.max_buffered_ms)

    def _send_unspoken_text(self) -> None:
        """After a TTS failure the reply's remaining text still reaches the client."""
        plan = self.plan
        sent_words = " ".join(self._state.transcript_sent).split()
        all_words = self._state.reply_text().split()
        rest = " ".join(all_words[len(sent_words) :])
        if rest:
            delta = rest if not sent_words else " " + rest
            self._state.transcript_sent.append(rest)
            self._open()
            self._outbox.enqueue(
                plan.response_id, ev.AudioTranscriptDelta(plan.response_id, plan.item.id, delta)
            )

    def _open(self) -> None:
        if not self.has_message:
            self.has_message = True
            self._open_message()

    def _finish_in_order(self) -> None:
        """Queue the closing events behind the last audio frame."""
        if not self.has_message and self.calls:
            return  # only function calls: no message
        self._open()
        plan = self.plan
        rid, item_id = plan.response_id, plan.item.id
        text = self.reply_text()
        if plan.speaks:
            self._outbox.enqueue(rid, ev.AudioDone(rid, item_id))
            self._outbox.enqueue(rid, ev.AudioTranscriptDone(rid, item_id, text))
        else:
            self._outbox.enqueue(rid, ev.TextDone(rid, item_id, text))


async def _drain(queue: asyncio.Queue[str | None]) -> AsyncIterator[str]:
    while (text := await queue.get()) is not None:
        yield text
    # Leave the end mark for the next reader: after a TTS failure _speak waits for it.
    queue.put_nowait(None)
