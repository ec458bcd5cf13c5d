"""The SDK's exceptions."""

from __future__ import annotations

from realtime.client.events import ErrorEvent


class RealtimeError(Exception):
    """Base class of the SDK's errors."""


class RealtimeConnectionError(RealtimeError):
    """The server could not be reached, or did not open a Realtime session. ``http_status``:
    the status of an HTTP answer that refused the WebSocket (401 without a valid key)."""

    def __init__(self, message: str, http_status: int | None = None) -> None:
        super().__init__(message)
        self.http_status = http_status


class RealtimeConnectionClosed(RealtimeError):
    """The connection ended while the client was using it."""


class RealtimeServerError(RealtimeError):
    """The server answered with an ``error`` event."""

    def __init__(self, event: ErrorEvent, context: str = "server error") -> None:
        super().__init__(f"{context}: {event.error.describe()}")
        self.event = event
