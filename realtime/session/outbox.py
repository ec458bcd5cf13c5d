"""Everything a session sends goes through its outbox: the one place that paces reply audio
and drops whatever belongs to a cancelled response.

Two lanes. Control events (VAD events, errors, session and cancellation events) go out at
once and never wait behind audio. Response items (audio frames and the events that must stay
in order with them, such as transcript deltas and the reply's end) leave in order, with
audio released at playback pace plus a small lead, so that "sent" is close to "played":
a barge-in then stops the audio within one frame, and the transcript can be cut to what
the listener actually heard.

A response can also be *held* (produced but not sent: a speculative reply, released when the
turn is confirmed, or dropped without a trace) and its audio *paused* (speech over the
reply, until it is judged a barge-in or a false alarm).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from realtime.events import ServerEvent

# How far ahead of real time reply audio is released, by default.
DEFAULT_LEAD_MS = 200.0


@dataclass(frozen=True)
class AudioFrame:
    response_id: str
    item_id: str
    pcm: np.ndarray
    segment_index: int


@dataclass(frozen=True)
class EventMessage:
    event: ServerEvent
    response_id: str | None = None


Outgoing = AudioFrame | EventMessage


@dataclass(frozen=True)
class Closing:
    """The last thing out of an outbox: the transport is to close with ``code`` and ``reason``
    (WebSocket close codes; other transports map them)."""

    code: int
    reason: str


@dataclass(frozen=True)
class _DeferredEvent:
    build: Callable[[], ServerEvent]
    response_id: str


@dataclass
class Delivery:
    """What has left the outbox for one response."""

    sent_ms: float = 0.0
    queued_ms: float = 0.0
    sent_ms_by_segment: dict[int, float] = field(default_factory=dict)
    first_audio_sent_at: float | None = None
    last_audio_sent_at: float | None = None
    cancelled_at: float | None = None
    frames_sent: int = 0
    frames_dropped: int = 0
    played_ms: float | None = None
    """How much of the sent audio the far end says it has played, where the transport can
    tell (a phone call's Twilio marks); ``None`` where "sent" is all there is to go by."""
    played_reported_at: float | None = None

    @property
    def heard_ms(self) -> float:
        """The reply audio the listener heard: what was played, else what was sent."""
        return self.sent_ms if self.played_ms is None else min(self.sent_ms, self.played_ms)

    def heard_ms_by_segment(self) -> dict[int, float]:
        """``heard_ms`` shared out over the TTS segments in the order they were sent."""
        if self.played_ms is None:
            return dict(self.sent_ms_by_segment)
        left = self.heard_ms
        heard: dict[int, float] = {}
        for segment in sorted(self.sent_ms_by_segment):
            heard[segment] = min(self.sent_ms_by_segment[segment], left)
            left -= heard[segment]
        return heard


class PlaybackObserver(Protocol):
    """Told about reply audio as it leaves and as the far end reports it played (an echo
    canceller's far-end reference)."""

    def reply_sent(
        self, response_id: str, pcm: np.ndarray, sample_rate: int, play_at: float, sent_ms: float
    ) -> None:
        """A frame left; by the outbox's pacing it starts playing at ``play_at`` (its clock);
        ``sent_ms``: the response's audio sent so far, this frame included."""
        ...

    def reply_played(self, response_id: str, played_ms: float) -> None: ...

    def reply_stopped(self, response_id: str, at: float) -> None:
        """The response was cut: the far end stops playing it at ``at`` (the outbox's clock)
        and drops what it still holds (a client told ``speech_started``, Twilio's ``clear``)."""
        ...


class OutboxClosed(Exception):
    """The session's transport is gone."""


class Outbox:
    def __init__(
        self,
        sample_rate: int,
        *,
        lead_ms: float = DEFAULT_LEAD_MS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.sample_rate = sample_rate
        self.lead_s = lead_ms / 1000.0
        self._clock = clock
        self._control: deque[EventMessage] = deque()
        self._ordered: deque[Outgoing | _DeferredEvent] = deque()
        self._deliveries: dict[str, Delivery] = {}
        self._stale: set[str] = set()
        self._held: dict[str, list[tuple[bool, Outgoing | _DeferredEvent]]] = {}
        self._paused: set[str] = set()
        self._playout_end = 0.0
        self._wake = asyncio.Event()
        self._room = asyncio.Event()
        self._closed = False
        self._closing: Closing | None = None
        self.observer: PlaybackObserver | None = None

    # -- producers ---------------------------------------------------------------------

    def send_now(self, event: ServerEvent, response_id: str | None = None) -> None:
        """Queue a control event ahead of all response items."""
        if (
            self._closed
            or self._closing
            or (response_id is not None and response_id in self._stale)
        ):
            return
        self._put(EventMessage(event, response_id), control=True)

    def enqueue(self, response_id: str, event: ServerEvent) -> None:
        """Queue an event that must leave in order with the response's audio."""
        if self._closed or response_id in self._stale:
            return
        self._put(EventMessage(event, response_id), control=False)

    def enqueue_built_on_send(self, response_id: str, build: Callable[[], ServerEvent]) -> None:
        """Like ``enqueue``, but the event is built when it leaves (e.g. the reply's end,
        whose timings include the moment the first audio frame was sent)."""
        if self._closed or response_id in self._stale:
            return
        self._put(_DeferredEvent(build, response_id), control=False)

    def hold(self, response_id: str) -> None:
        """Keep everything of ``response_id`` back until ``release`` (or ``cancel``)."""
        self._held.setdefault(response_id, [])

    def release(self, response_id: str) -> None:
        """Send what was held for ``response_id``, in the order it came, and stop holding."""
        for control, item in self._held.pop(response_id, []):
            (self._control if control else self._ordered).append(item)  # type: ignore[arg-type]
        self._wake.set()

    def is_held(self, response_id: str) -> bool:
        return response_id in self._held

    def pause(self, response_id: str) -> None:
        """Stop releasing ``response_id``'s audio (and what follows it) until ``resume``."""
        self._paused.add(response_id)

    def resume(self, response_id: str) -> None:
        """Play on from the frame where the pause began: nothing is lost or repeated."""
        self._paused.discard(response_id)
        self._wake.set()

    def is_paused(self, response_id: str) -> bool:
        return response_id in self._paused

    def finish(self, code: int, reason: str) -> None:
        """Close the transport once the control events queued so far have left; anything
        queued after this is dropped."""
        if self._closing is None and not self._closed:
            self._closing = Closing(code, reason)
            self._wake.set()

    @property
    def finishing(self) -> bool:
        return self._closing is not None

    @property
    def idle(self) -> bool:
        """Nothing is queued to leave (held responses aside)."""
        return not self._control and not self._ordered

    def _put(self, item: Outgoing | _DeferredEvent, *, control: bool) -> None:
        held = self._held.get(item.response_id) if item.response_id is not None else None
        if held is not None:
            held.append((control, item))
        elif control:
            assert isinstance(item, EventMessage)
            self._control.append(item)
        else:
            self._ordered.append(item)
        self._wake.set()

    async def enqueue_audio(self, frame: AudioFrame, max_buffered_ms: float) -> bool:
        """Queue one audio frame, waiting while the response has ``max_buffered_ms`` queued.

        Returns False, without queueing, once the response is cancelled.
        """
        delivery = self.delivery(frame.response_id)
        while delivery.queued_ms >= max_buffered_ms:
            if self._closed or frame.response_id in self._stale:
                return False
            self._room.clear()
            await self._room.wait()
        if self._closed or frame.response_id in self._stale:
            return False
        delivery.queued_ms += self._frame_ms(frame)
        self._put(frame, control=False)
        return True

    async def wait_buffered_below(self, response_id: str, ms: float) -> None:
        """Wait until less than ``ms`` of the response's audio is queued (or it is cancelled)."""
        delivery = self.delivery(response_id)
        while delivery.queued_ms >= ms and not self._closed and response_id not in self._stale:
            self._room.clear()
            await self._room.wait()

    def cancel(self, response_id: str) -> Delivery:
        """Make every queued and future item of ``response_id`` stale; audio stops here."""
        delivery = self.delivery(response_id)
        if response_id not in self._stale:
            self._stale.add(response_id)
            delivery.cancelled_at = self._clock()
            if delivery.played_ms is not None and delivery.played_reported_at is not None:
                # Playback went on since the last report, as far as the audio sent allows.
                since_ms = 1000.0 * (delivery.cancelled_at - delivery.played_reported_at)
                delivery.played_ms = min(delivery.sent_ms, delivery.played_ms + since_ms)
            self._drop_stale()
            self._playout_end = min(self._playout_end, self._clock())
            if self.observer is not None and delivery.frames_sent:
                self.observer.reply_stopped(response_id, delivery.cancelled_at)
        self._room.set()
        self._wake.set()
        return delivery

    def is_stale(self, response_id: str) -> bool:
        return response_id in self._stale

    def delivery(self, response_id: str) -> Delivery:
        found = self._deliveries.get(response_id)
        if found is None:
            found = self._deliveries[response_id] = Delivery()
        return found

    def played(self, response_id: str, played_ms: float) -> None:
        """The transport learnt that the first ``played_ms`` of a response's audio was played.
        Ignored once the response is cancelled: what a transport reports after it was told to
        drop the audio (Twilio echoes its marks on ``clear``) was dropped, not played."""
        if response_id in self._stale or response_id not in self._deliveries:
            return
        delivery = self._deliveries[response_id]
        delivery.played_ms = max(delivery.played_ms or 0.0, played_ms)
        delivery.played_reported_at = self._clock()
        if self.observer is not None:
            self.observer.reply_played(response_id, played_ms)

    def forget(self, response_id: str) -> None:
        """Drop bookkeeping for a finished response (its stale mark stays)."""
        self._deliveries.pop(response_id, None)

    def buffered_ms(self, response_id: str) -> float:
        return self.delivery(response_id).queued_ms

    def close(self) -> None:
        self._closed = True
        self._control.clear()
        self._ordered.clear()
        self._room.set()
        self._wake.set()

    # -- the transport's sender --------------------------------------------------------

    async def get(self) -> Outgoing | Closing:
        """The next item to send now. Stale items never come out of here; after ``finish``,
        the control events queued before it, then the ``Closing``."""
        while True:
            if self._closed:
                raise OutboxClosed
            self._drop_stale()
            if self._control:
                return self._control.popleft()
            if self._closing is not None:
                self._closed = True
                return self._closing
            if self._ordered:
                head = self._ordered[0]
                if isinstance(head, EventMessage):
                    self._ordered.popleft()
                    return head
                if isinstance(head, _DeferredEvent):
                    self._ordered.popleft()
                    return EventMessage(head.build(), head.response_id)
                if head.response_id in self._paused:
                    await self._sleep_until_woken(None)
                    continue
                now = self._clock()
                release_at = self._playout_end - self.lead_s
                if now >= release_at:
                    self._ordered.popleft()
                    self._account_sent(head, now)
                    return head
                await self._sleep_until_woken(release_at - now)
                continue
            await self._sleep_until_woken(None)

    # -- internals ---------------------------------------------------------------------

    def _frame_ms(self, frame: AudioFrame) -> float:
        return 1000.0 * len(frame.pcm) / self.sample_rate

    def _account_sent(self, frame: AudioFrame, now: float) -> None:
        duration_ms = self._frame_ms(frame)
        play_at = max(self._playout_end, now)
        self._playout_end = play_at + duration_ms / 1000.0
        delivery = self.delivery(frame.response_id)
        delivery.queued_ms = max(0.0, delivery.queued_ms - duration_ms)
        delivery.sent_ms += duration_ms
        delivery.frames_sent += 1
        segment = frame.segment_index
        delivery.sent_ms_by_segment[segment] = (
            delivery.sent_ms_by_segment.get(segment, 0.0) + duration_ms
        )
        if delivery.first_audio_sent_at is None:
            delivery.first_audio_sent_at = now
        delivery.last_audio_sent_at = now
        if self.observer is not None:
            self.observer.reply_sent(
                frame.response_id, frame.pcm, self.sample_rate, play_at, delivery.sent_ms
            )
        self._room.set()

    def _drop_stale(self) -> None:
        if not self._stale:
            return
        for response_id in self._stale.intersection(self._held):
            for _, item in self._held.pop(response_id):
                if isinstance(item, AudioFrame):
                    self.delivery(response_id).queued_ms -= self._frame_ms(item)
        self._paused.difference_update(self._stale)
        if any(m.response_id in self._stale for m in self._control):
            self._control = deque(m for m in self._control if m.response_id not in self._stale)
        if any(item.response_id in self._stale for item in self._ordered):
            kept: deque[Outgoing | _DeferredEvent] = deque()
            for item in self._ordered:
                if item.response_id in self._stale:
                    if isinstance(item, AudioFrame):
                        delivery = self.delivery(item.response_id)
                        delivery.queued_ms = max(0.0, delivery.queued_ms - self._frame_ms(item))
                        delivery.frames_dropped += 1
                else:
                    kept.append(item)
            self._ordered = kept

    async def _sleep_until_woken(self, timeout_s: float | None) -> None:
        self._wake.clear()
        if timeout_s is None:
            await self._wake.wait()
            return
        try:
            async with asyncio.timeout(timeout_s):
                await self._wake.wait()
        except TimeoutError:
            pass
