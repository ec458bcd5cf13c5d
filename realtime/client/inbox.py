"""Server events waiting to be read by an SDK client, handed out once each, in order."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable

from realtime.client.errors import RealtimeConnectionClosed
from realtime.client.events import ServerEvent

EventMatch = str | tuple[str, ...] | Callable[[ServerEvent], bool]
RECENT_EVENT_TYPES = 12


def describe_match(match: EventMatch) -> str:
    if isinstance(match, str):
        return match
    if isinstance(match, tuple):
        return " or ".join(match)
    return getattr(match, "__name__", "a matching event")


def matcher(match: EventMatch) -> Callable[[ServerEvent], bool]:
    if isinstance(match, str):
        return lambda event: event.type == match
    if isinstance(match, tuple):
        return lambda event: event.type in match
    return match


class EventInbox:
    """The queue between a client's reader and its callers.

    ``closed_error(doing)`` builds the exception raised once the connection has ended and
    every queued event has been read; its text should say why the connection ended.
    """

    def __init__(self, closed_error: Callable[[str], RealtimeConnectionClosed]) -> None:
        self._queue: asyncio.Queue[ServerEvent | None] = asyncio.Queue()
        self._recent: deque[str] = deque(maxlen=RECENT_EVENT_TYPES)
        self._closed_error = closed_error
        self._ended = False

    def put(self, event: ServerEvent) -> None:
        self._recent.append(event.type)
        self._queue.put_nowait(event)

    def end(self) -> None:
        """No more events will come (the connection ended); readers see it once drained."""
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(None)

    @property
    def recent_types(self) -> list[str]:
        """Types of the last events received, oldest first."""
        return list(self._recent)

    def describe_recent(self) -> str:
        if not self._recent:
            return "no events received"
        return "last events received: " + ", ".join(self._recent)

    async def next_event(self, timeout: float | None = None) -> ServerEvent:  # noqa: ASYNC109
        """The next event. Raises ``TimeoutError`` after ``timeout`` seconds, and the
        closed error once the connection has ended and the queue is empty."""
        try:
            async with asyncio.timeout(timeout):
                event = await self._queue.get()
        except TimeoutError:
            raise TimeoutError(
                f"no server event within {timeout:g} s; {self.describe_recent()}"
            ) from None
        if event is None:
            self._queue.put_nowait(None)  # every later reader sees the end too
            raise self._closed_error("while waiting for an event")
        return event

    async def wait_for(self, match: EventMatch, timeout: float | None) -> ServerEvent:  # noqa: ASYNC109
        """Consume events until one matches (an event type, a tuple of types, or a
        predicate) and return it; the events before it are discarded.

        Raises ``TimeoutError`` naming what was awaited and the last event types received.
        """
        matches = matcher(match)
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            remaining = None if deadline is None else deadline - loop.time()
            try:
                if remaining is not None and remaining <= 0:
                    raise TimeoutError
                event = await self.next_event(remaining)
            except TimeoutError:
                raise TimeoutError(
                    f"timed out after {timeout:g} s waiting for {describe_match(match)}; "
                    f"{self.describe_recent()}"
                ) from None
            except RealtimeConnectionClosed:
                raise self._closed_error(f"while waiting for {describe_match(match)}") from None
            if matches(event):
                return event

    async def events(self) -> AsyncIterator[ServerEvent]:
        """Iterate over events until the connection ends."""
        while True:
            try:
                yield await self.next_event()
            except RealtimeConnectionClosed:
                return
