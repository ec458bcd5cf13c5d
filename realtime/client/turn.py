"""One spoken turn: stream an utterance like a microphone, collect the reply, time it."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from realtime.client.connection import DEFAULT_CHUNK_MS, RealtimeConnection
from realtime.client.errors import RealtimeServerError
from realtime.client.events import (
    ErrorEvent,
    InputTranscriptionCompleted,
    OutputAudioDelta,
    OutputAudioTranscriptDelta,
    OutputAudioTranscriptDone,
    OutputTextDelta,
    OutputTextDone,
    ReasoningDelta,
    ReasoningDone,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
    SpeechStopped,
    XTurn,
)
from tokenizer.resample import resample

DEFAULT_TRAILING_SILENCE_MS = 10_000.0
DEFAULT_TURN_TIMEOUT_S = 60.0
# Frames quieter than this, relative to the loudest frame, count as silence when finding
# where the utterance's speech ends.
DEFAULT_SPEECH_FLOOR_DB = 40.0
_LEVEL_FRAME_MS = 10.0


@dataclass
class ResponseResult:
    """Everything one response delivered, with client receive times (``time.monotonic()``)."""

    response_id: str | None
    done: ResponseDone
    sample_rate: int
    audio: npt.NDArray[np.int16]
    transcript: str
    text: str
    reasoning: str
    user_transcript: str | None
    first_audio_at: float | None
    last_audio_at: float | None
    events: list[ServerEvent]
    errors: list[ErrorEvent]

    @property
    def status(self) -> str:
        return self.done.status

    @property
    def x_turn(self) -> XTurn | None:
        return self.done.x_turn

    @property
    def reply_text(self) -> str:
        """What the reply said: its audio transcript, or its text for text-only replies."""
        return self.transcript or self.text

    @property
    def audio_ms(self) -> float:
        return 1000.0 * len(self.audio) / self.sample_rate


@dataclass
class _Collected:
    """The running state of ``collect_response``."""

    response_id: str | None
    sample_rate: int
    audio: list[npt.NDArray[np.int16]] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    final_transcript: str | None = None
    final_text: str | None = None
    final_reasoning: str | None = None
    user_transcript: str | None = None
    first_audio_at: float | None = None
    last_audio_at: float | None = None
    events: list[ServerEvent] = field(default_factory=list)
    errors: list[ErrorEvent] = field(default_factory=list)

    def ours(self, response_id: str | None) -> bool:
        return self.response_id is None or response_id in (None, self.response_id)

    def feed(self, event: ServerEvent, raise_on_error: bool) -> ResponseDone | None:
        """Take one event; returns the response.done that ends the response."""
        self.events.append(event)
        if isinstance(event, ResponseCreated):
            if self.response_id is None:
                self.response_id = event.response.id
            if event.response.id == self.response_id and event.response.output_rate:
                self.sample_rate = event.response.output_rate
        elif isinstance(event, ErrorEvent):
            self.errors.append(event)
            if raise_on_error and self.response_id is None:
                raise RealtimeServerError(event, "server error before the response started")
        elif isinstance(event, InputTranscriptionCompleted):
            self.user_transcript = event.transcript
        elif isinstance(event, OutputAudioDelta) and self.ours(event.response_id):
            self.audio.append(event.pcm())
            if self.first_audio_at is None:
                self.first_audio_at = event.received_at
            self.last_audio_at = event.received_at
        elif isinstance(event, OutputAudioTranscriptDelta) and self.ours(event.response_id):
            self.transcript.append(event.delta)
        elif isinstance(event, OutputAudioTranscriptDone) and self.ours(event.response_id):
            self.final_transcript = event.transcript
        elif isinstance(event, OutputTextDelta) and self.ours(event.response_id):
            self.text.append(event.delta)
        elif isinstance(event, OutputTextDone) and self.ours(event.response_id):
            self.final_text = event.text
        elif isinstance(event, ReasoningDelta) and self.ours(event.response_id):
            self.reasoning.append(event.delta)
        elif isinstance(event, ReasoningDone) and self.ours(event.response_id):
            self.final_reasoning = event.text
        elif isinstance(event, ResponseDone) and self.ours(event.response.id):
            return event
        return None

    def progress(self) -> str:
        if self.response_id is None:
            return "no response.created received"
        return (
            f"response {self.response_id} in progress with {len(self.audio)} audio deltas, "
            f"{len(self.errors)} errors"
        )

    def result(self, done: ResponseDone) -> ResponseResult:
        if done.response.output_rate:
            self.sample_rate = done.response.output_rate
        audio = np.concatenate(self.audio) if self.audio else np.zeros(0, dtype=np.int16)
        return ResponseResult(
            response_id=self.response_id or done.response.id,
            done=done,
            sample_rate=self.sample_rate,
            audio=audio.astype(np.int16, copy=False),
            transcript=_final(self.final_transcript, self.transcript),
            text=_final(self.final_text, self.text),
            reasoning=_final(self.final_reasoning, self.reasoning),
            user_transcript=self.user_transcript,
            first_audio_at=self.first_audio_at,
            last_audio_at=self.last_audio_at,
            events=self.events,
            errors=self.errors,
        )


def _final(complete: str | None, deltas: list[str]) -> str:
    """The server's complete text when it sent one, else the deltas joined."""
    return complete if complete else "".join(deltas)


async def collect_response(
    client: RealtimeConnection,
    *,
    timeout: float,  # noqa: ASYNC109
    response_id: str | None = None,
    raise_on_error: bool = True,
    on_event: Callable[[ServerEvent], None] | None = None,
) -> ResponseResult:
    """Consume events until the ``response.done`` of one response and gather what it sent.

    The response is ``response_id`` or else the first one created after the call. Error
    events during the response are kept in ``errors`` (the server ends a failed response
    with response.done); with ``raise_on_error`` an error before any response was created
    raises ``RealtimeServerError``. Raises ``TimeoutError`` after ``timeout`` seconds.
    ``on_event`` sees every event as it is consumed (e.g. to act on the first reply audio
    while the response is still running, as a barge-in does).
    """
    state = _Collected(response_id=response_id, sample_rate=client.output_rate)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        remaining = deadline - loop.time()
        try:
            if remaining <= 0:
                raise TimeoutError
            event = await client.next_event(remaining)
        except TimeoutError:
            raise TimeoutError(
                f"no response.done within {timeout:g} s ({state.progress()}); "
                f"{client.describe_recent()}"
            ) from None
        if on_event is not None:
            on_event(event)
        done = state.feed(event, raise_on_error)
        if done is not None:
            return state.result(done)


@dataclass
class TurnResult:
    """A spoken turn and its reply. Times are ``time.monotonic()`` on the client."""

    response: ResponseResult
    input_rate: int
    utterance_ms: float
    voiced_ms: float
    stream_started_at: float
    last_voiced_sent_at: float
    realtime: bool

    @property
    def first_packet_latency_ms(self) -> float | None:
        """First reply audio received minus the send of the utterance's last voiced sample.

        Only a latency measurement when the audio was streamed in real time (``realtime``).
        """
        if self.response.first_audio_at is None:
            return None
        return 1000.0 * (self.response.first_audio_at - self.last_voiced_sent_at)

    @property
    def speech_stopped_at(self) -> float | None:
        """When the server's speech_stopped (end of turn) arrived, if it did."""
        for event in self.response.events:
            if isinstance(event, SpeechStopped):
                return event.received_at
        return None


def voiced_end(
    pcm: npt.NDArray[np.int16], sample_rate: int, *, floor_db: float = DEFAULT_SPEECH_FLOOR_DB
) -> int:
    """The sample index just past the last voiced 10-ms frame of ``pcm``.

    A frame is voiced when its RMS is within ``floor_db`` of the loudest frame's. Digital
    silence throughout counts as all voiced (returns ``len(pcm)``).
    """
    frame = max(1, round(sample_rate * _LEVEL_FRAME_MS / 1000.0))
    n_frames = math.ceil(len(pcm) / frame)
    if n_frames == 0:
        return 0
    padded = np.zeros(n_frames * frame, dtype=np.float64)
    padded[: len(pcm)] = pcm
    rms = np.sqrt(np.mean(np.square(padded.reshape(n_frames, frame)), axis=1))
    loudest = float(rms.max())
    if loudest == 0.0:
        return len(pcm)
    voiced = np.flatnonzero(rms >= loudest * 10.0 ** (-floor_db / 20.0))
    return min(len(pcm), int(voiced[-1] + 1) * frame)


def _prepare_utterance(
    pcm: npt.NDArray[np.int16], rate: int, input_rate: int, floor_db: float
) -> tuple[npt.NDArray[np.int16], int]:
    samples = np.asarray(resample(pcm, rate, input_rate), dtype=np.int16)
    return samples, voiced_end(samples, input_rate, floor_db=floor_db)


async def speak_turn(
    client: RealtimeConnection,
    pcm: npt.NDArray[np.int16],
    rate: int,
    *,
    trailing_silence_ms: float = DEFAULT_TRAILING_SILENCE_MS,
    realtime: bool = True,
    timeout: float = DEFAULT_TURN_TIMEOUT_S,  # noqa: ASYNC109
    chunk_ms: float = DEFAULT_CHUNK_MS,
    speech_floor_db: float = DEFAULT_SPEECH_FLOOR_DB,
) -> TurnResult:
    """Say ``pcm`` (mono int16 at ``rate``) as a microphone would and collect the reply.

    Streams the utterance, then up to ``trailing_silence_ms`` of silence, stopping as soon
    as the response is done; the server's VAD ends the turn and creates the response.
    ``timeout`` bounds the wait for response.done after the utterance (real-time streaming
    adds the utterance's duration). Raises ``TimeoutError`` and ``RealtimeServerError`` as
    ``collect_response`` does.
    """
    if pcm.dtype != np.int16 or pcm.ndim != 1:
        raise TypeError(f"audio must be mono int16 samples, got {pcm.dtype} {pcm.shape}")
    input_rate = client.input_rate
    samples, voiced = await asyncio.to_thread(
        _prepare_utterance, pcm, rate, input_rate, speech_floor_db
    )
    utterance_s = len(samples) / input_rate
    bound = timeout + (utterance_s if realtime else 0.0)
    stop = asyncio.Event()
    collector = asyncio.create_task(collect_response(client, timeout=bound))
    collector.add_done_callback(lambda _task: stop.set())

    async def send(part: npt.NDArray[np.int16]) -> float:
        return await client.stream_audio(
            part, sample_rate=input_rate, chunk_ms=chunk_ms, realtime=realtime, stop=stop
        )

    try:
        started_at = time.monotonic()
        last_voiced_sent_at = await send(samples[:voiced])
        silence = np.zeros(round(input_rate * trailing_silence_ms / 1000.0), dtype=np.int16)
        await send(np.concatenate([samples[voiced:], silence]))
        response = await collector
    finally:
        if not collector.done():
            collector.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await collector
        elif not collector.cancelled():
            collector.exception()  # retrieved here when a send failure is what propagates
    return TurnResult(
        response=response,
        input_rate=input_rate,
        utterance_ms=1000.0 * utterance_s,
        voiced_ms=1000.0 * voiced / input_rate,
        stream_started_at=started_at,
        last_voiced_sent_at=last_voiced_sent_at,
        realtime=realtime,
    )
