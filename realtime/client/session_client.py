"""``RealtimeSessionClient``: what the WebSocket and the WebRTC clients share, whatever carries
their events: parsing server events into one inbox, the session they report, sending client
events, the session update, silence and the input buffer and response commands.

A transport supplies how a message leaves (``_send_message``), how it closes, why it ended
(``_closed_error``) and how microphone audio goes out (``stream_audio``); it feeds each message
it receives to ``_receive``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

import numpy as np
import numpy.typing as npt

from realtime.client.connection import DEFAULT_CHUNK_MS
from realtime.client.errors import RealtimeConnectionClosed, RealtimeServerError
from realtime.client.events import (
    ErrorEvent,
    ServerEvent,
    SessionCreated,
    SessionUpdated,
    parse_server_event,
    session_audio_rate,
)
from realtime.client.inbox import EventInbox, EventMatch

log = logging.getLogger(__name__)


def event_id() -> str:
    return f"event_{secrets.token_hex(10)}"


def require_pcm16(pcm: npt.ArrayLike) -> npt.NDArray[np.int16]:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16 or samples.ndim != 1:
        raise TypeError(
            f"audio must be mono int16 samples, got dtype {samples.dtype} shape {samples.shape}"
        )
    return samples


class RealtimeSessionClient(ABC):
    """One Realtime session, its server events handed out once each from a single queue."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._inbox = EventInbox(self._closed_error)
        self._session: dict[str, Any] = {}

    # -- what a transport supplies -------------------------------------------------------------

    @abstractmethod
    async def _send_message(self, message: str | bytes, doing: str) -> None:
        """Send one message; raises ``RealtimeConnectionClosed`` (naming ``doing``) when the
        session has ended."""

    @abstractmethod
    def _closed_error(self, doing: str) -> RealtimeConnectionClosed:
        """The error raised once the session has ended, saying why and what was being done."""

    @abstractmethod
    async def close(self) -> None:
        """End the session (safe to call more than once)."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """True once the session has ended (events still queued can be read)."""

    @property
    @abstractmethod
    def input_rate(self) -> int:
        """The sample rate ``stream_audio`` sends at."""

    @abstractmethod
    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        *,
        sample_rate: int,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        realtime: bool = True,
        stop: asyncio.Event | None = None,
    ) -> float:
        """Send ``pcm`` as a microphone would; returns the ``time.monotonic()`` at which its
        last piece left (the start time if none did). Setting ``stop`` cuts the rest."""

    def _outgoing(self, event: dict[str, Any]) -> dict[str, Any]:
        """The client event as sent (a transport may stamp it)."""
        return event

    def _deliver(self, event: ServerEvent) -> None:
        """Hand a parsed server event on to the readers."""
        self._inbox.put(event)

    # -- receiving -----------------------------------------------------------------------------

    def _receive(self, message: str | bytes, received_at: float) -> None:
        """One message from the server: parsed, the session noted, delivered."""
        try:
            event = parse_server_event(json.loads(message), received_at)
        except ValueError as exc:  # json.JSONDecodeError is a ValueError
            log.warning("ignoring a message from %s that is not an event: %s", self.url, exc)
            return
        if isinstance(event, SessionCreated | SessionUpdated):
            self._session = event.session
        self._deliver(event)

    async def next_event(self, timeout: float | None = None) -> ServerEvent:  # noqa: ASYNC109
        """The next server event. Raises ``TimeoutError`` after ``timeout`` seconds, and
        ``RealtimeConnectionClosed`` once the session has ended and the queue is empty."""
        return await self._inbox.next_event(timeout)

    async def wait_for(self, match: EventMatch, timeout: float | None) -> ServerEvent:  # noqa: ASYNC109
        """Consume events until one matches (an event type, a tuple of types, or a
        predicate) and return it; the events before it are discarded.

        Raises ``TimeoutError`` naming what was awaited and the last event types received.
        """
        return await self._inbox.wait_for(match, timeout)

    def events(self) -> AsyncIterator[ServerEvent]:
        """Iterate over server events until the session ends."""
        return self._inbox.events()

    # -- state ---------------------------------------------------------------------------------

    @property
    def session(self) -> dict[str, Any]:
        """The session object from the latest session.created / session.updated received."""
        return self._session

    @property
    def output_rate(self) -> int:
        """The sample rate of the session's reply audio."""
        return session_audio_rate(self._session, "output")

    @property
    def recent_event_types(self) -> list[str]:
        """Types of the last events received, oldest first."""
        return self._inbox.recent_types

    def describe_recent(self) -> str:
        """The last event types received, for error messages."""
        return self._inbox.describe_recent()

    # -- sending -------------------------------------------------------------------------------

    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event (a dict with ``type``) as JSON."""
        message = json.dumps(self._outgoing(event), separators=(",", ":"))
        await self._send_message(message, f"before sending {event.get('type')!r}")

    async def send_raw(self, message: str | bytes) -> None:
        """Send one message exactly as given (for tools and tests that probe validation)."""
        await self._send_message(message, "while sending a raw message")

    async def update_session(
        self,
        session: dict[str, Any],
        *,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """Send ``session.update`` and return the session the server confirms.

        Consumes events until ``session.updated`` or an ``error`` about this update, which
        raises ``RealtimeServerError``.
        """
        update_id = event_id()
        await self.send({"type": "session.update", "event_id": update_id, "session": session})

        def is_answer(event: ServerEvent) -> bool:
            if isinstance(event, ErrorEvent):
                return event.error.event_id in (None, update_id)
            return isinstance(event, SessionUpdated)

        is_answer.__name__ = "session.updated"
        answer = await self.wait_for(is_answer, timeout)
        if isinstance(answer, ErrorEvent):
            raise RealtimeServerError(answer, "server rejected session.update")
        assert isinstance(answer, SessionUpdated)
        return answer.session

    async def send_silence(
        self,
        ms: float,
        *,
        realtime: bool = True,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        stop: asyncio.Event | None = None,
    ) -> float:
        """Stream ``ms`` milliseconds of digital silence like ``stream_audio``."""
        rate = self.input_rate
        silence = np.zeros(max(0, round(rate * ms / 1000.0)), dtype=np.int16)
        return await self.stream_audio(
            silence, sample_rate=rate, chunk_ms=chunk_ms, realtime=realtime, stop=stop
        )

    async def commit(self) -> None:
        await self.send({"type": "input_audio_buffer.commit"})

    async def clear(self) -> None:
        await self.send({"type": "input_audio_buffer.clear"})

    async def create_response(self, **params: Any) -> None:
        """Send ``response.create``; ``params`` become its ``response`` object if given."""
        event: dict[str, Any] = {"type": "response.create"}
        if params:
            event["response"] = params
        await self.send(event)

    async def cancel_response(self, response_id: str | None = None) -> None:
        event: dict[str, Any] = {"type": "response.cancel"}
        if response_id is not None:
            event["response_id"] = response_id
        await self.send(event)

    # -- as a context manager ------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
