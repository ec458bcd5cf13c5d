"""The WebSocket transport: OpenAI Realtime JSON events both ways, audio as base64 PCM16 or
G.711, as the session's audio format says."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime.protocol import server_events as ev
from realtime.protocol.audio_codec import encode_audio
from realtime.protocol.session_config import AudioFormat, PcmFormat
from realtime.session.outbox import AudioFrame, Outgoing
from realtime.session.services import SessionServices
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
        await self._websocket.send_text(json.dumps(event, separators=(",", ":")))


async def serve_websocket(websocket: WebSocket, services: SessionServices) -> None:
    """Run one session over an accepted-on-arrival WebSocket until either side closes."""
    offered = websocket.scope.get("subprotocols") or []
    await websocket.accept(
        subprotocol=REALTIME_SUBPROTOCOL if REALTIME_SUBPROTOCOL in offered else None
    )
    sink = WebSocketSink(websocket)
    session = Session(services, sink)
    sink.output_format = lambda: session.config.audio.output.format
    await session.start()
    try:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                break
            raw = message.get("text")
            if raw is None:
                raw = message.get("bytes") or b""
            await session.handle_message(raw)
    except WebSocketDisconnect:
        pass
    finally:
        await session.close()
        if websocket.application_state != WebSocketState.DISCONNECTED:
            try:
                await websocket.close()
            except (RuntimeError, WebSocketDisconnect):
                log.debug("websocket already closed by the client")
