"""What the WebSocket transports (Realtime events, Twilio Media Streams) do alike on a
Starlette WebSocket: read raw messages until the peer goes, send compact JSON, close once."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

from realtime.session.services import TransportClosed


async def raw_messages(websocket: WebSocket) -> AsyncIterator[str | bytes]:
    """Each text or binary message, until the peer disconnects."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            raw = message.get("text")
            yield raw if raw is not None else (message.get("bytes") or b"")


async def send_json(websocket: WebSocket, message: dict[str, Any]) -> None:
    """Raises ``TransportClosed`` once the peer is gone."""
    try:
        await websocket.send_text(json.dumps(message, separators=(",", ":")))
    except (WebSocketDisconnect, RuntimeError, OSError) as exc:
        # Starlette and uvicorn say "the client is gone" in these three ways.
        raise TransportClosed(str(exc)) from exc


async def close_once(websocket: WebSocket, code: int = 1000, reason: str = "") -> None:
    """Close unless it is closed already (by us, or by the peer)."""
    if websocket.application_state == WebSocketState.CONNECTED:
        with contextlib.suppress(RuntimeError, WebSocketDisconnect):
            await websocket.close(code, reason)
