"""Where a session's output goes on a WebRTC call: reply audio to the outgoing track, events
to the ``oai-events`` data channel.

As in OpenAI's WebRTC API, reply audio travels only as media (no
``response.output_audio.delta`` events), and the data channel tells when it starts and
stops playing: ``output_audio_buffer.started`` / ``.stopped``, and ``.cleared`` when a
response is cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from collections.abc import Callable

from aiortc import RTCDataChannel
from aiortc.exceptions import InvalidStateError

from realtime import events as ev
from realtime.protocol.openai_render import render
from realtime.session.outbox import AudioFrame, Outbox, Outgoing
from realtime.webrtc_media.media import PacedAudioTrack
from tokenizer.resample import StreamResampler

log = logging.getLogger(__name__)

# Events held while the data channel is not open yet (session.created and what follows
# it while ICE and DTLS complete); a peer without a channel never gets them.
_MAX_PENDING_EVENTS = 256


class EventChannel:
    """JSON events to the peer over its data channel, held back until the channel opens."""

    def __init__(self, max_pending: int = _MAX_PENDING_EVENTS) -> None:
        self._channel: RTCDataChannel | None = None
        self._pending: deque[str] = deque(maxlen=max_pending)
        self.sent = 0

    def attach(self, channel: RTCDataChannel) -> None:
        self._channel = channel
        if channel.readyState == "open":
            self._flush()
        else:
            channel.on("open", self._flush)

    def send(self, event: ev.ServerEvent) -> None:
        text = json.dumps(render(event), separators=(",", ":"))
        channel = self._channel
        if channel is None or channel.readyState != "open":
            self._pending.append(text)
            return
        self._send(channel, text)

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until what was sent has left the channel's buffer."""
        channel = self._channel
        if channel is None or channel.readyState != "open" or channel.bufferedAmount == 0:
            return
        emptied = asyncio.Event()
        channel.bufferedAmountLowThreshold = 0
        channel.on("bufferedamountlow", emptied.set)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await emptied.wait()
        channel.remove_listener("bufferedamountlow", emptied.set)

    def _flush(self) -> None:
        channel = self._channel
        while channel is not None and self._pending and channel.readyState == "open":
            self._send(channel, self._pending.popleft())

    def _send(self, channel: RTCDataChannel, text: str) -> None:
        try:
            channel.send(text)
            self.sent += 1
        except InvalidStateError:
            log.debug("data channel closed; event dropped")


class WebRtcSink:
    """The session's ``TransportSink`` on a WebRTC call (also the track's playback listener)."""

    name = "webrtc"

    def __init__(
        self,
        track: PacedAudioTrack,
        events: EventChannel,
        *,
        hang_up: Callable[[str], None] | None = None,
    ) -> None:
        """``hang_up(reason)`` ends the call when the session ends it."""
        self._track = track
        self._events = events
        self._hang_up = hang_up
        self._outbox: Outbox | None = None
        self._rates: dict[str, int] = {}
        self._resamplers: dict[str, StreamResampler] = {}
        self._playing: set[str] = set()
        track.listener = self

    def bind(self, outbox: Outbox) -> None:
        """Use the session's outbox as the judge of what is stale (cancelled) and of what is
        paused (speech over the reply, not yet judged): the track holds both at once, not
        after the audio it has already queued."""
        self._outbox = outbox
        self._track.is_stale = outbox.is_stale
        self._track.is_paused = outbox.is_paused

    async def deliver(self, item: Outgoing) -> None:
        if isinstance(item, AudioFrame):
            resampler = self._resampler(item.response_id)
            self._track.push(item.response_id, resampler.process(item.pcm))
            return
        event = item.event
        if isinstance(event, ev.ReplyCreated):
            self._rates[event.reply.id] = event.reply.output_format.rate
        elif isinstance(event, ev.ReplyEnded):
            self._end_response(event.reply)
        self._events.send(event)

    async def close(self, code: int, reason: str) -> None:
        """The session ends the call: let its last events reach the peer, then hang up."""
        await self._events.drain(timeout_s=1.0)
        if self._hang_up is not None:
            self._hang_up(f"{reason} ({code})")

    # -- PlaybackListener --------------------------------------------------------------------

    def playback_started(self, tag: str) -> None:
        self._playing.add(tag)
        self._events.send(ev.PlaybackStarted(tag))

    def playback_finished(self, tag: str) -> None:
        if tag in self._playing:
            self._playing.discard(tag)
            self._events.send(ev.PlaybackStopped(tag))

    # -- internals -----------------------------------------------------------------------

    def _resampler(self, response_id: str) -> StreamResampler:
        resampler = self._resamplers.get(response_id)
        if resampler is None:
            rate = self._rates.get(response_id)
            if rate is None:
                rate = self._outbox.sample_rate if self._outbox is not None else 24_000
            resampler = StreamResampler(rate, self._track.sample_rate)
            self._resamplers[response_id] = resampler
        return resampler

    def _end_response(self, reply: ev.Reply) -> None:
        response_id = reply.id
        self._rates.pop(response_id, None)
        resampler = self._resamplers.pop(response_id, None)
        if reply.status == "completed":
            if resampler is not None:
                self._track.push(response_id, resampler.flush())
            self._track.finish(response_id)
            return
        self._track.drop(response_id)
        if response_id in self._playing:
            self._playing.discard(response_id)
            self._events.send(ev.PlaybackCleared(response_id))
