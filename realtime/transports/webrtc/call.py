"""One WebRTC call: an aiortc peer connection around one session, from the offer to hang-up.

The caller's microphone arrives as Opus on the audio track and goes to
``session.append_audio``; client events arrive on the ``oai-events`` data channel and go,
parsed, to ``session.handle_event``; the session's output leaves through a ``WebRtcSink``. The
call ends (session closed, peer connection closed, everything freed) on hang-up, when the
connection fails or closes, when the data channel closes, when it never connects, or when
the caller's audio stops arriving (a closed tab).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import av
from aiortc import RTCDataChannel, RTCPeerConnection, RTCRtpSender, RTCSessionDescription
from aiortc.exceptions import InvalidAccessError, InvalidStateError
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime import events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import SessionConfig
from realtime.session.services import SessionServices
from realtime.session.session import Session
from realtime.transports.client_input import hand_over
from realtime.transports.webrtc.offer import OfferRejected
from realtime.transports.webrtc.options import WebRtcOptions
from realtime.transports.webrtc.sink import EventChannel, WebRtcSink
from realtime.webrtc_media.loopback import gather_with_loopback
from realtime.webrtc_media.media import (
    EVENTS_CHANNEL_LABEL,
    PacedAudioTrack,
    mono_pcm,
    shorten_receive_buffer,
)

log = logging.getLogger(__name__)

_MAX_QUEUED_CLIENT_EVENTS = 1024


class WebRtcCall:
    """A call's peer connection and session. ``answer`` once, then it runs until it ends."""

    def __init__(
        self,
        services: SessionServices,
        options: WebRtcOptions,
        *,
        config: SessionConfig | None = None,
        on_session: Callable[[Session], None] | None = None,
        on_ended: Callable[[WebRtcCall], None] | None = None,
    ) -> None:
        """``config``: the session's configuration (default: the service's);
        ``on_session``: told the session once it exists; ``on_ended``: told when the call
        is over, however it ends."""
        self.id = ev.new_id("rtc")
        self._config = config
        self._on_session = on_session
        self._services = services
        self._options = options
        self._on_ended = on_ended
        self._pc = RTCPeerConnection(options.rtc_configuration())
        self._track = PacedAudioTrack()
        self._events = EventChannel()
        self._sink = WebRtcSink(self._track, self._events, hang_up=self._end_soon)
        self._session: Session | None = None
        self._client_events: asyncio.Queue[str | bytes] = asyncio.Queue(_MAX_QUEUED_CLIENT_EVENTS)
        self._connected = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._ending: asyncio.Task[None] | None = None
        self._ended = asyncio.Event()
        self.end_reason: str | None = None
        self._pc.on("datachannel", self._on_datachannel)
        self._pc.on("track", self._on_track)
        self._pc.on("connectionstatechange", self._on_connection_state)

    @property
    def session(self) -> Session | None:
        return self._session

    @property
    def ended(self) -> bool:
        return self._ending is not None

    async def answer(self, offer_sdp: str) -> str:
        """Take the caller's offer, start the session, and return the SDP answer.

        Raises ``OfferRejected`` (the call is then already ended) for an offer aiortc cannot
        answer.
        """
        try:
            await self._pc.setRemoteDescription(RTCSessionDescription(offer_sdp, "offer"))
            self._attach_reply_track()
            if self._options.allow_loopback:
                await gather_with_loopback(self._pc)
            await self._pc.setLocalDescription(await self._pc.createAnswer())
        except OfferRejected:
            await self.hang_up("rejected offer")
            raise
        except (ValueError, KeyError, IndexError, InvalidAccessError, InvalidStateError) as exc:
            await self.hang_up("rejected offer")
            message = f"cannot answer the SDP offer: {exc}"
            raise OfferRejected(400, "invalid_offer", message) from None
        except BaseException:
            await self.hang_up("failed to answer")
            raise
        if self.ended:
            raise OfferRejected(503, "call_ended", "the call ended while it was being answered")
        session = Session(self._services, self._sink, config=self.session_config())
        if self._on_session is not None:
            self._on_session(session)
        self._sink.bind(session.outbox)
        session.outbox.lead_s = self._options.audio_lead_ms / 1000.0
        self._session = session
        try:
            await session.start()
        except BaseException:
            await self.hang_up("failed to start the session")
            raise
        self._spawn(self._feed_client_events(session), "events")
        self._spawn(self._watch_connecting(), "connect-watch")
        log.info("call %s answered (session %s)", self.id, session.config.id)
        return self._pc.localDescription.sdp

    def session_config(self) -> SessionConfig:
        """The call's session, with the server's echo cancellation off whatever the server's
        default: the browser cancels echo itself (getUserMedia's echoCancellation). A
        session.update may still turn it on."""
        base = self._config or self._services.settings.default_config
        audio_input = base.audio.input.model_copy(update={"x_echo_cancellation": None})
        audio = base.audio.model_copy(update={"input": audio_input})
        return base.model_copy(update={"audio": audio})

    async def hang_up(self, reason: str = "hang-up") -> None:
        """End the call and free everything; safe to call more than once, from anywhere."""
        if self._ending is None:
            self.end_reason = reason
            self._ending = asyncio.create_task(self._end(), name=f"{self.id}-end")
        await asyncio.shield(self._ending)

    async def wait_ended(self) -> None:
        await self._ended.wait()

    # -- peer connection events -------------------------------------------------------------

    def _attach_reply_track(self) -> None:
        audio = [t for t in self._pc.getTransceivers() if t.kind == "audio"]
        if not audio:
            raise OfferRejected(400, "offer_without_audio", "the SDP offer has no audio section")
        opus = [
            codec
            for codec in RTCRtpSender.getCapabilities("audio").codecs
            if codec.mimeType.lower() == "audio/opus"
        ]
        audio[0].setCodecPreferences(opus)
        self._pc.addTrack(self._track)

    def _on_datachannel(self, channel: RTCDataChannel) -> None:
        if channel.label != EVENTS_CHANNEL_LABEL:
            log.info("call %s: ignoring data channel %r", self.id, channel.label)
            return
        self._events.attach(channel)
        channel.on("message", self._on_client_message)
        channel.on("close", lambda: self._end_soon("data channel closed"))

    def _on_client_message(self, message: str | bytes) -> None:
        try:
            self._client_events.put_nowait(message)
        except asyncio.QueueFull:
            log.warning("call %s: client events arrive faster than handled; dropping", self.id)

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        prefetch = self._options.receive_prefetch_frames
        if prefetch is not None:
            for transceiver in self._pc.getTransceivers():
                if transceiver.receiver.track is track and not shorten_receive_buffer(
                    transceiver.receiver, prefetch
                ):
                    log.warning("cannot shorten aiortc's receive buffer (aiortc changed?)")
        self._spawn(self._feed_audio(track), "audio-in")

    def _on_connection_state(self) -> None:
        state = self._pc.connectionState
        log.info("call %s: connection %s", self.id, state)
        if state == "connected":
            self._connected.set()
        elif state in ("failed", "closed"):
            self._end_soon(f"connection {state}")

    # -- tasks ----------------------------------------------------------------------------

    async def _feed_client_events(self, session: Session) -> None:
        while True:
            hand_over(session, await self._client_events.get())

    async def _feed_audio(self, track: MediaStreamTrack) -> None:
        await self._connected.wait()
        warned = False
        while True:
            try:
                async with asyncio.timeout(self._options.media_timeout_s):
                    frame = await track.recv()
            except MediaStreamError:
                return
            except TimeoutError:
                self._end_soon(f"no audio from the caller for {self._options.media_timeout_s:g} s")
                return
            session = self._session
            if session is None or not isinstance(frame, av.AudioFrame):
                continue
            try:
                session.append_audio(mono_pcm(frame), frame.sample_rate)
            except ProtocolError as err:
                if not warned:
                    log.warning("call %s: caller audio dropped: %s", self.id, err)
                    warned = True

    async def _watch_connecting(self) -> None:
        try:
            async with asyncio.timeout(self._options.connect_timeout_s):
                await self._connected.wait()
        except TimeoutError:
            self._end_soon(f"not connected within {self._options.connect_timeout_s:g} s")

    def _spawn(self, coro: Any, what: str) -> None:
        task = asyncio.create_task(coro, name=f"{self.id}-{what}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(lambda done: self._task_done(done, what))

    def _task_done(self, task: asyncio.Task[Any], what: str) -> None:
        """A call task that dies of an exception ends the call, said and logged: a call whose
        audio or events are no longer read must not stay up."""
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        assert exc is not None
        session = self._session
        if session is not None:
            session.supervisor.failed(exc, f"the call's {what} task")
            session.end(1011, f"{what} failed")
        else:
            log.error("call %s: %s task failed", self.id, what, exc_info=exc)
            self._end_soon(f"{what} failed")

    def _end_soon(self, reason: str) -> None:
        if self._ending is None:
            self.end_reason = reason
            self._ending = asyncio.create_task(self._end(), name=f"{self.id}-end")

    async def _end(self) -> None:
        log.info("call %s ending: %s", self.id, self.end_reason)
        current = asyncio.current_task()
        tasks = [task for task in self._tasks if task is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        try:
            if self._session is not None:
                await self._session.close()
        finally:
            self._track.stop()
            with contextlib.suppress(Exception):
                await self._pc.close()
            self._ended.set()
            if self._on_ended is not None:
                self._on_ended(self)
