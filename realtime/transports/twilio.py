"""The phone transport: Twilio Media Streams (``<Connect><Stream>``) over a WebSocket.

Twilio sends ``connected``, ``start`` (the stream's ``streamSid``), ``media`` (base64 μ-law at
8 kHz, 20 ms a message), ``mark`` (a mark of ours whose audio has been played, or dropped by
a ``clear``), ``dtmf`` and ``stop``. This side sends ``media`` (the reply, μ-law 8 kHz, paced
by the session's outbox), ``mark``s along each reply's audio (their echoes tell the
session how much the caller heard), and ``clear`` when a reply is cut off (a barge-in), so
that Twilio drops the audio it still holds.

Underneath is the same ``Session`` as for the realtime WebSocket, with G.711 μ-law as its
input and output format. Twilio cannot show OpenAI events: they are dropped here, and
errors are logged and counted.
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.websockets import WebSocket

from realtime import events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import EchoCancellation, PcmuFormat, SessionConfig
from realtime.session.outbox import AudioFrame, Outgoing
from realtime.session.services import SessionServices
from realtime.session.session import Session
from realtime.transports.websocket_io import close_once, raw_messages, send_json
from tokenizer.g711 import G711_SAMPLE_RATE, ulaw_decode, ulaw_encode

log = logging.getLogger(__name__)

TWILIO_MEDIA_STREAM_PATH = "/v1/twilio/media-stream"

# Marks sent and not yet played; Twilio echoes each one, so this only grows when it does not.
_MAX_PENDING_MARKS = 256
MARK_EVERY_MS = 200.0
"""How finely the caller's playback is tracked; Twilio sends each mark back as it plays."""


class TwilioProtocolError(ValueError):
    """A message that is not what Twilio's Media Streams protocol sends."""


@dataclass(frozen=True)
class StreamStart:
    stream_sid: str
    call_sid: str
    custom_parameters: dict[str, str]


def parse_message(raw: str | bytes) -> dict[str, Any]:
    try:
        message = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TwilioProtocolError(f"not JSON: {exc}") from None
    if not isinstance(message, dict) or not isinstance(message.get("event"), str):
        raise TwilioProtocolError("a Media Streams message is an object with an 'event'")
    return message


def parse_start(message: dict[str, Any]) -> StreamStart:
    start = message.get("start")
    stream_sid = message.get("streamSid") or (start or {}).get("streamSid")
    if not isinstance(start, dict) or not isinstance(stream_sid, str) or not stream_sid:
        raise TwilioProtocolError("'start' needs a 'start' object and a 'streamSid'")
    media_format = start.get("mediaFormat") or {}
    encoding = media_format.get("encoding", "audio/x-mulaw")
    rate = media_format.get("sampleRate", G711_SAMPLE_RATE)
    if encoding != "audio/x-mulaw" or rate != G711_SAMPLE_RATE:
        raise TwilioProtocolError(f"unsupported media format {encoding} at {rate} Hz")
    parameters = start.get("customParameters") or {}
    return StreamStart(
        stream_sid=stream_sid,
        call_sid=str(start.get("callSid", "")),
        custom_parameters={str(k): str(v) for k, v in parameters.items()},
    )


def media_payload(message: dict[str, Any]) -> bytes:
    media = message.get("media")
    payload = media.get("payload") if isinstance(media, dict) else None
    if not isinstance(payload, str):
        raise TwilioProtocolError("'media' needs media.payload (base64 μ-law)")
    try:
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TwilioProtocolError(f"media.payload is not valid base64 ({exc})") from None


class TwilioSink:
    """The session's ``TransportSink`` on a Twilio stream: audio as ``media``, ``clear`` when
    a reply that was heard is cancelled, and ``mark``s: one every ``MARK_EVERY_MS`` of reply
    audio and one at its end. Twilio echoes a mark once the audio before it has played, which
    tells the session how much of a reply the caller heard (``on_played``)."""

    name = "twilio"

    def __init__(
        self,
        websocket: WebSocket,
        stream_sid: str,
        on_played: Callable[[str, float], None] = lambda response_id, played_ms: None,
    ) -> None:
        self._websocket = websocket
        self.stream_sid = stream_sid
        self._on_played = on_played
        self._sent_ms: dict[str, float] = {}  # reply audio sent so far, by response
        self._marked_ms: dict[str, float] = {}
        self.pending_marks: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self.played_marks = 0
        self._marks_made = 0

    async def deliver(self, item: Outgoing) -> None:
        if isinstance(item, AudioFrame):
            rid = item.response_id
            payload = base64.b64encode(ulaw_encode(item.pcm)).decode("ascii")
            await self._send({"event": "media", "media": {"payload": payload}})
            sent = self._sent_ms[rid] = (
                self._sent_ms.get(rid, 0.0) + 1000.0 * len(item.pcm) / G711_SAMPLE_RATE
            )
            if sent - self._marked_ms.get(rid, 0.0) >= MARK_EVERY_MS:
                await self._mark(rid, sent)
            return
        match item.event:
            case ev.AudioDone(response_id=rid):
                await self._mark(rid, self._sent_ms.get(rid, 0.0), last=True)
            case ev.ReplyEnded(reply=reply):
                heard = self._sent_ms.pop(reply.id, 0.0) > 0
                self._marked_ms.pop(reply.id, None)
                if heard and reply.status == "cancelled":
                    await self._send({"event": "clear"})
            case ev.ErrorReported(message=message):
                log.warning("twilio stream %s: %s", self.stream_sid, message)

    def mark_played(self, name: str) -> None:
        """Twilio played (or, after a ``clear``, dropped) everything before mark ``name``."""
        marked = self.pending_marks.pop(name, None)
        if marked is None:
            log.debug("twilio stream %s: unknown mark %r", self.stream_sid, name)
            return
        self.played_marks += 1
        self._on_played(*marked)

    async def close(self, code: int, reason: str) -> None:
        """The session ends the call (Twilio hangs up when its stream closes)."""
        await close_once(self._websocket, code, reason)

    async def _mark(self, response_id: str, sent_ms: float, *, last: bool = False) -> None:
        self._marks_made += 1
        name = f"{response_id}.{self._marks_made}" + (".end" if last else "")
        self._marked_ms[response_id] = sent_ms
        self.pending_marks[name] = (response_id, sent_ms)
        while len(self.pending_marks) > _MAX_PENDING_MARKS:
            self.pending_marks.popitem(last=False)
        await self._send({"event": "mark", "mark": {"name": name}})

    async def _send(self, message: dict[str, Any]) -> None:
        message["streamSid"] = self.stream_sid
        await send_json(self._websocket, message)


def phone_config(base: SessionConfig, *, echo_cancellation: bool) -> SessionConfig:
    """The server's default session with G.711 μ-law both ways, as Twilio carries, and the
    server's echo cancellation when asked (a phone on speaker hears the reply; Twilio's
    marks say when it played)."""
    echo = EchoCancellation() if echo_cancellation else None
    audio = base.audio.model_copy(
        update={
            "input": base.audio.input.model_copy(
                update={"format": PcmuFormat(), "x_echo_cancellation": echo}
            ),
            "output": base.audio.output.model_copy(update={"format": PcmuFormat()}),
        }
    )
    return base.model_copy(update={"audio": audio}, deep=True)


class TwilioCall:
    """One phone call: Twilio's messages in, the session's output out."""

    def __init__(
        self,
        websocket: WebSocket,
        services: SessionServices,
        *,
        on_session: Callable[[Session], None] | None = None,
    ) -> None:
        self._websocket = websocket
        self._services = services
        self._on_session = on_session
        self.session: Session | None = None
        self.sink: TwilioSink | None = None

    async def run(self) -> None:
        try:
            async for raw in raw_messages(self._websocket):
                if not await self._handle(raw):
                    return
        finally:
            if self.session is not None:
                await self.session.close()

    async def _handle(self, raw: str | bytes) -> bool:
        """One message from Twilio; False once the stream is over."""
        try:
            message = parse_message(raw)
            kind = message["event"]
            if kind == "start":
                await self._start(parse_start(message))
            elif kind == "media":
                self._media(media_payload(message))
            elif kind == "mark":
                name = (message.get("mark") or {}).get("name")
                if self.sink is not None and isinstance(name, str):
                    self.sink.mark_played(name)
            elif kind == "stop":
                return False
            # "connected" and "dtmf" need nothing
        except (TwilioProtocolError, ProtocolError) as exc:
            self._services.metrics.errors_total.labels(code="twilio_bad_message").inc()
            log.warning("twilio stream: bad message ignored: %s", exc)
        except Exception as exc:
            if self.session is None:
                raise
            self.session.supervisor.failed(exc, "handling a Twilio message")
        return True

    async def _start(self, start: StreamStart) -> None:
        if self.session is not None:
            raise TwilioProtocolError("a second 'start' on one stream")
        self.sink = TwilioSink(self._websocket, start.stream_sid, on_played=self._played)
        settings = self._services.settings
        config = phone_config(
            settings.default_config, echo_cancellation=settings.phone_echo_cancellation
        )
        self.session = Session(self._services, self.sink, config=config)
        if self._on_session is not None:
            self._on_session(self.session)
        await self.session.start()
        log.info("twilio call %s: stream %s started", start.call_sid, start.stream_sid)

    def _played(self, response_id: str, played_ms: float) -> None:
        if self.session is not None:
            self.session.outbox.played(response_id, played_ms)

    def _media(self, payload: bytes) -> None:
        if self.session is None:
            raise TwilioProtocolError("'media' before 'start'")
        self.session.append_audio(ulaw_decode(payload), G711_SAMPLE_RATE)


async def serve_twilio_media_stream(
    websocket: WebSocket,
    services: SessionServices,
    *,
    on_session: Callable[[Session], None] | None = None,
) -> None:
    """Accept an admitted Media Streams WebSocket and run one phone call on it."""
    await websocket.accept()
    try:
        await TwilioCall(websocket, services, on_session=on_session).run()
    finally:
        await close_once(websocket)
