"""The WebSocket transport: OpenAI Realtime JSON events both ways, audio as base64 PCM16 or
G.711, as the session's audio format says."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime.protocol import server_events as ev
from realtime.protocol.audio_codec import encode_audio
from realtime.protocol.session_config import AudioFormat, PcmFormat, SessionConfig
from realtime.session.outbox import AudioFrame, Outgoing
from realtime.session.services import SessionServices, TransportClosed
from realtime.session.session import Session

log = logging.getLogger(__name__)

REALTIME_SUBPROTOCOL = "realtime"


class WebSocketSink:
    name = "websocket"

    def __init__(self, websocket: WebSocket) -> None:
        self._websocket = websocket
        self.output_format: Callable[[], AudioFormat] = PcmFormat
        """The session's current output format (set once the session exists)."""

    async def deliver(self, item: Outgoing) -> None:
        if isinstance(item, AudioFrame):
            audio = encode_audio(item.pcm, self.output_format())
            event = ev.audio_delta(item.response_id, item.item_id, audio)
        else:
            event = item.event
        text = json.dumps(event, separators=(",", ":"))
        try:
            await self._websocket.send_text(text)
        except (WebSocketDisconnect, RuntimeError, OSError) as exc:
            # Starlette and uvicorn say "the client is gone" in these three ways.
            raise TransportClosed(str(exc)) from exc

    async def close(self, code: int, reason: str) -> None:
        if self._websocket.application_state == WebSocketState.CONNECTED:
            with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                await self._websocket.close(code, reason)


async def serve_websocket(
    websocket: WebSocket,
    services: SessionServices,
    *,
    config: SessionConfig | None = None,
    on_session: Callable[[Session], None] | None = None,
) -> None:
    """Accept an admitted WebSocket and run one session on it until either side ends it."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(
        subprotocol=REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None
    )
    sink = WebSocketSink(websocket)
    session = Session(services, sink, config=config)
    sink.output_format = lambda: session.config.audio.output.format
    if on_session is not None:
        on_session(session)
    await session.start()
    receiving = asyncio.create_task(_receive(websocket, session))
    finished = asyncio.create_task(session.wait_finished())
    try:
        await asyncio.wait({receiving, finished}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (receiving, finished):
            task.cancel()
        await asyncio.gather(receiving, finished, return_exceptions=True)
        await session.close()
        if websocket.application_state != WebSocketState.DISCONNECTED:
            try:
                await websocket.close()
            except (RuntimeError, WebSocketDisconnect):
                log.debug("websocket already closed by the client")


async def _receive(websocket: WebSocket, session: Session) -> None:
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await session.handle_message(raw)
