"""A scripted OpenAI-Realtime server on 127.0.0.1 for the SDK tests (real websockets and events).

It sends the service's own typed events through its OpenAI renderer and validates session
updates with the service's own ``apply_session_update``. Its "VAD" is exact: a chunk with
any non-zero sample is speech, and ``silence_window_ms`` of zeros after speech ends the turn.
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import numpy as np
import numpy.typing as npt
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.http11 import Request, Response

from realtime import events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.openai_render import render
from realtime.protocol.session_config import PcmFormat, SessionConfig, apply_session_update
from realtime.telemetry.timings import TurnTimings
from tokenizer.pcm import pcm16_from_base64, pcm16_to_base64

REALTIME_PATH = "/v1/realtime"


@dataclass(frozen=True)
class FakeScript:
    """How the fake server behaves."""

    silence_window_ms: float = 200.0
    first_audio_delay_s: float = 0.1
    reply_deltas: int = 5
    reply_delta_ms: float = 40.0
    reply_hz: float = 440.0
    transcript_deltas: tuple[str, ...] = ("Hello", " there", ".")
    reasoning_deltas: tuple[str, ...] = ("The user", " greeted me.")
    user_transcript: str = "hi there"
    open_session: bool = True  # False: accept the WebSocket but never send session.created
    answer: bool = True  # False: detect turns but never create a response
    error_on_append: bool = False  # answer every audio append with an error event
    fail_response: bool = False  # end the response with error + response.done(failed)


@dataclass
class ReceivedAppend:
    samples: int
    voiced: bool
    received_at: float


@dataclass
class Recording:
    """What one connection received and sent, with server-side monotonic times."""

    events: list[dict[str, Any]] = field(default_factory=list)
    appends: list[ReceivedAppend] = field(default_factory=list)
    reply: npt.NDArray[np.int16] = field(default_factory=lambda: np.zeros(0, dtype=np.int16))
    first_audio_sent_at: float | None = None
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition, repr=False)

    def event_types(self) -> list[str]:
        return [event["type"] for event in self.events]

    async def changed(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def wait_until(self, condition: Callable[[], bool], within_s: float = 3.0) -> None:
        """Wait (bounded) until ``condition()`` holds; it is checked after each change."""
        async with asyncio.timeout(within_s), self._changed:
            await self._changed.wait_for(condition)


def sine(hz: float, ms: float, rate: int, amplitude: int = 8000) -> npt.NDArray[np.int16]:
    t = np.arange(round(rate * ms / 1000.0)) / rate
    return np.rint(amplitude * np.sin(2 * np.pi * hz * t)).astype(np.int16)


class _Connection:
    """The scripted session of one client."""

    def __init__(self, websocket: ServerConnection, script: FakeScript) -> None:
        self.websocket = websocket
        self.script = script
        self.config = SessionConfig()
        self.recording = Recording()
        self._samples_seen = 0
        self._speech_item: str | None = None
        self._silence_samples = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, event: ev.ServerEvent) -> None:
        await self.websocket.send(json.dumps(render(event)))

    async def run(self) -> None:
        try:
            if self.script.open_session:
                await self.send(ev.SessionCreated(self.config))
            async for raw in self.websocket:
                data = json.loads(raw)
                self.recording.events.append(data)
                await self._handle(data)
                await self.recording.changed()
        finally:
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _handle(self, data: dict[str, Any]) -> None:
        if data["type"] == "session.update":
            try:
                self.config = apply_session_update(
                    self.config, data.get("session"), data.get("event_id")
                )
            except ProtocolError as err:
                await self.send(err.event())
                return
            await self.send(ev.SessionUpdated(self.config))
        elif data["type"] == "input_audio_buffer.append":
            await self._on_audio(pcm16_from_base64(data["audio"]))

    async def _on_audio(self, pcm: npt.NDArray[np.int16]) -> None:
        voiced = bool(np.any(pcm != 0))
        self.recording.appends.append(ReceivedAppend(len(pcm), voiced, time.monotonic()))
        if self.script.error_on_append:
            await self.send(
                ev.ErrorReported.server("audio_rejected", "this fake server rejects audio")
            )
            return
        rate = self.config.input_rate
        start_ms = 1000 * self._samples_seen // rate
        self._samples_seen += len(pcm)
        if voiced:
            self._silence_samples = 0
            if self._speech_item is None:
                self._speech_item = ev.new_id("item")
                await self.send(ev.SpeechStarted(start_ms, self._speech_item))
            return
        if self._speech_item is None:
            return
        self._silence_samples += len(pcm)
        if self._silence_samples * 1000 < self.script.silence_window_ms * rate:
            return
        item_id, self._speech_item = self._speech_item, None
        end_ms = 1000 * (self._samples_seen - self._silence_samples) // rate
        timings = TurnTimings()
        timings.mark("speech_stopped")
        timings.silence_window_ms = self.script.silence_window_ms
        timings.speech_end_audio_ms = float(end_ms)
        await self.send(ev.SpeechStopped(end_ms, item_id))
        await self.send(ev.BufferCommitted(item_id, None))
        if self.script.answer:
            task = asyncio.create_task(self._respond(item_id, timings))
            self._tasks.add(task)

    async def _respond(self, user_item_id: str, timings: TurnTimings) -> None:
        script, rate = self.script, self.config.output_rate
        await self.send(
            ev.TranscriptionCompleted(user_item_id, script.user_transcript, audio_seconds=1.0)
        )
        response_id, item_id = ev.new_id("resp"), ev.new_id("item")
        output_format = PcmFormat(rate=rate)

        def response(status: ev.ReplyStatus, **extra: Any) -> ev.Reply:
            return ev.Reply(response_id, status, True, output_format, None, None, None, **extra)

        timings.mark("response_created")
        await self.send(ev.ReplyCreated(response("in_progress")))
        await asyncio.sleep(script.first_audio_delay_s)
        for delta in script.reasoning_deltas:
            await self.send(ev.ReasoningDelta(response_id, item_id, delta))
        await self.send(ev.ReasoningDone(response_id, item_id, "".join(script.reasoning_deltas)))
        if script.fail_response:
            await self.send(ev.ErrorReported.server("engine_error", "the fake engine failed"))
            await self.send(ev.ReplyEnded(response("failed", turn=_x_turn(timings))))
            return
        reply = sine(script.reply_hz, script.reply_deltas * script.reply_delta_ms, rate)
        self.recording.reply = reply
        pieces = np.array_split(reply, script.reply_deltas)
        for index, piece in enumerate(pieces):
            if index < len(script.transcript_deltas):
                text = script.transcript_deltas[index]
                await self.send(ev.AudioTranscriptDelta(response_id, item_id, text))
            if self.recording.first_audio_sent_at is None:
                self.recording.first_audio_sent_at = time.monotonic()
                timings.mark("first_audio_sent", self.recording.first_audio_sent_at)
            await self.send(ev.AudioDelta(response_id, item_id, pcm16_to_base64(piece)))
            await asyncio.sleep(0)
        transcript = "".join(script.transcript_deltas)
        await self.send(ev.AudioDone(response_id, item_id))
        await self.send(ev.AudioTranscriptDone(response_id, item_id, transcript))
        timings.mark("response_done")
        item = ev.reply_message(item_id, speaks=True, text=transcript, status="completed")
        await self.send(ev.ReplyEnded(response("completed", output=(item,), turn=_x_turn(timings))))


def _x_turn(timings: TurnTimings) -> ev.TurnReport:
    return ev.TurnReport("fake", "scripted", True, "after-think", timings.report())


class FakeRealtimeServer:
    """``async with FakeRealtimeServer(script) as server``: serves ``server.url`` until exit."""

    def __init__(self, script: FakeScript | None = None) -> None:
        self.script = script or FakeScript()
        self.connections: list[_Connection] = []
        self._server: Server | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        port = next(iter(self._server.sockets)).getsockname()[1]
        return f"ws://127.0.0.1:{port}{REALTIME_PATH}"

    @property
    def recording(self) -> Recording:
        """The latest connection's recording."""
        return self.connections[-1].recording

    async def _process_request(
        self, connection: ServerConnection, request: Request
    ) -> Response | None:
        if request.path != REALTIME_PATH:
            return connection.respond(http.HTTPStatus.NOT_FOUND, "not a Realtime endpoint\n")
        return None

    async def _handler(self, websocket: ServerConnection) -> None:
        connection = _Connection(websocket, self.script)
        self.connections.append(connection)
        await connection.run()

    async def close_connections(self) -> None:
        for connection in self.connections:
            await connection.websocket.close()

    async def __aenter__(self) -> FakeRealtimeServer:
        self._server = await serve(
            self._handler, "127.0.0.1", 0, process_request=self._process_request, compression=None
        )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        await asyncio.wait_for(self._server.wait_closed(), 5.0)
