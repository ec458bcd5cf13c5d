"""The WebSocket transport: OpenAI Realtime JSON events both ways, audio as base64 PCM16 or
G.711, as the session's audio format says."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from starlette.websockets import WebSocket

from realtime import events as ev
from realtime.protocol.audio_codec import encode_audio
from realtime.protocol.openai_render import render
from realtime.protocol.session_config import AudioFormat, PcmFormat, SessionConfig
from realtime.session.outbox import AudioFrame, Outgoing
from realtime.session.services import SessionServices
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from realtime.transports.websocket_io import close_once, raw_messages, send_json

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
            event: ev.ServerEvent = ev.AudioDelta(item.response_id, item.item_id, audio)
        else:
            event = item.event
        await send_json(self._websocket, render(event))

    async def close(self, code: int, reason: str) -> None:
        await close_once(self._websocket, code, reason)


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
        await close_once(websocket)


async def _receive(websocket: WebSocket, session: Session) -> None:
    async for raw in raw_messages(websocket):
        hand_over(session, raw)
