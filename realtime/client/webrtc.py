"""``RealtimeWebRtcClient``: a call to the service over WebRTC from Python (aiortc), as a
browser makes it: SDP offer to ``POST /v1/realtime/calls``, microphone audio as Opus, reply
audio as Opus, JSON events on the ``oai-events`` data channel.

It is a ``RealtimeSessionClient``, as the WebSocket client is (the same events, commands and
session update), and so a ``RealtimeConnection``: reply audio comes out of ``next_event`` as
``response.output_audio.delta`` events (see ``webrtc_audio.ReplyAudioDemux``), so
``speak_turn`` and ``collect_response`` work over it as over the WebSocket client. Unlike
a WebSocket, media only flows in real time: ``stream_audio`` always paces at playback
speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from typing import Any

import av
import httpx
import numpy as np
import numpy.typing as npt
from aiortc import RTCConfiguration, RTCDataChannel, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.client.connection import DEFAULT_CHUNK_MS
from realtime.client.errors import (
    RealtimeConnectionClosed,
    RealtimeConnectionError,
)
from realtime.client.events import (
    ServerEvent,
    SessionCreated,
    SessionUpdated,
)
from realtime.client.session_client import RealtimeSessionClient, event_id, require_pcm16
from realtime.client.webrtc_audio import ReplyAudioDemux
from realtime.webrtc_media.ice import IceServer
from realtime.webrtc_media.loopback import gather_with_loopback
from realtime.webrtc_media.media import (
    EVENTS_CHANNEL_LABEL,
    MEDIA_SAMPLE_RATE,
    PacedAudioTrack,
    mono_pcm,
)
from tokenizer.resample import resample

log = logging.getLogger(__name__)

CALLS_PATH = "/v1/realtime/calls"


class RealtimeWebRtcClient(RealtimeSessionClient):
    """One Realtime session over WebRTC. Open it with ``await RealtimeWebRtcClient.connect(url)``
    (``url`` is the service's base, e.g. ``http://127.0.0.1:8080``) and close it with
    ``await client.close()`` or ``async with client``."""

    def __init__(self, pc: RTCPeerConnection, base_url: str, microphone: PacedAudioTrack) -> None:
        super().__init__(base_url)
        self._pc = pc
        self.call_id: str | None = None
        self._microphone = microphone
        self._channel: RTCDataChannel | None = None
        self._demux = ReplyAudioDemux(self._inbox.put)
        self._tasks: set[asyncio.Task[None]] = set()
        self._stream_count = 0
        self._closed = False
        self.frames_received = 0
        self._auth: dict[str, str] = {}

    # -- opening and closing -----------------------------------------------------------------

    @classmethod
    async def connect(
        cls,
        base_url: str,
        *,
        session: dict[str, Any] | None = None,
        ice_servers: Sequence[IceServer] = (),
        allow_loopback: bool = False,
        open_timeout: float = 20.0,
        api_key: str | None = None,
    ) -> RealtimeWebRtcClient:
        """Offer a call, wait for ``session.created`` on the data channel, and apply
        ``session`` with ``session.update``. Every step is bounded by ``open_timeout``.
        ``api_key`` (a key or an ``ek_`` client secret) is sent as a Bearer token.

        Raises ``RealtimeConnectionError`` when the call cannot be set up.
        """
        base_url = base_url.rstrip("/")
        config = RTCConfiguration(iceServers=[server.for_aiortc() for server in ice_servers])
        pc = RTCPeerConnection(config)
        microphone = PacedAudioTrack()
        client = cls(pc, base_url, microphone)
        client._auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        try:
            async with asyncio.timeout(open_timeout):
                await client._negotiate(allow_loopback)
                await client.wait_for("session.created", None)
                if session:
                    await client.update_session(session, timeout=open_timeout)
        except TimeoutError as exc:
            await client.close()
            raise RealtimeConnectionError(
                f"WebRTC call to {base_url} not established within {open_timeout:g} s "
                f"(connection {pc.connectionState}; {client.describe_recent()})"
            ) from exc
        except RealtimeConnectionClosed as exc:
            await client.close()
            raise RealtimeConnectionError(
                f"WebRTC call to {base_url} could not be established ({exc})"
            ) from exc
        except BaseException:
            await client.close()
            raise
        return client

    async def _negotiate(self, allow_loopback: bool) -> None:
        pc = self._pc
        pc.addTrack(self._microphone)
        channel = pc.createDataChannel(EVENTS_CHANNEL_LABEL)
        self._channel = channel
        channel.on("message", self._on_message)
        channel.on("close", self._on_closed)
        pc.on("track", self._on_track)
        pc.on("connectionstatechange", self._on_connection_state)
        offer = await pc.createOffer()
        if allow_loopback:
            await gather_with_loopback(pc)
        await pc.setLocalDescription(offer)
        async with httpx.AsyncClient(timeout=10.0) as http:
            try:
                reply = await http.post(
                    self.url + CALLS_PATH,
                    content=pc.localDescription.sdp.encode(),
                    headers={"Content-Type": "application/sdp", **self._auth},
                )
            except httpx.HTTPError as exc:
                raise RealtimeConnectionError(f"could not reach {self.url}: {exc}") from exc
        if reply.status_code != 201:
            raise RealtimeConnectionError(
                f"the service refused the call ({reply.status_code}): {reply.text}"
            )
        self.call_id = reply.headers.get("location", "").rsplit("/", 1)[-1] or None
        await pc.setRemoteDescription(RTCSessionDescription(reply.text, "answer"))

    async def hang_up(self) -> None:
        """Tell the service to end the call (``POST .../hangup``), then close."""
        if self.call_id is not None and not self._closed:
            async with httpx.AsyncClient(timeout=5.0) as http:
                with contextlib.suppress(httpx.HTTPError):
                    await http.post(
                        f"{self.url}{CALLS_PATH}/{self.call_id}/hangup", headers=self._auth
                    )
        await self.close()

    async def close(self) -> None:
        """Close the peer connection (the service sees the call end); safe to repeat."""
        if self._closed:
            return
        self._closed = True
        self._microphone.stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._pc.close()
        self._inbox.end()

    # -- state -------------------------------------------------------------------------------

    @property
    def input_rate(self) -> int:
        """Microphone audio is sent at the media rate (48 kHz); any rate may be given."""
        return MEDIA_SAMPLE_RATE

    @property
    def connection_state(self) -> str:
        return str(self._pc.connectionState)

    @property
    def closed(self) -> bool:
        return self._closed

    # -- events ----------------------------------------------------------------------------

    def _closed_error(self, doing: str) -> RealtimeConnectionClosed:
        return RealtimeConnectionClosed(
            f"the WebRTC call ended ({self.connection_state}) {doing}; {self.describe_recent()}"
        )

    def _outgoing(self, event: dict[str, Any]) -> dict[str, Any]:
        """Every event on the data channel carries an ``event_id``, as a browser's does."""
        return {"event_id": event_id(), **event}

    async def _send_message(self, message: str | bytes, doing: str) -> None:
        channel = self._channel
        if channel is None or channel.readyState != "open":
            raise RealtimeConnectionClosed(f"the oai-events data channel is not open {doing}")
        channel.send(message)

    def _on_message(self, message: str | bytes) -> None:
        self._receive(message, time.monotonic())

    def _deliver(self, event: ServerEvent) -> None:
        """Reply audio comes on the track: the demux puts it between the events it belongs to."""
        if isinstance(event, SessionCreated | SessionUpdated):
            self._demux.default_rate = event.output_rate
        self._demux.on_event(event)

    def _on_closed(self) -> None:
        self._inbox.end()

    def _on_connection_state(self) -> None:
        if self._pc.connectionState in ("failed", "closed"):
            self._on_closed()

    # -- audio -----------------------------------------------------------------------------

    def _on_track(self, track: MediaStreamTrack) -> None:
        if track.kind != "audio":
            return
        task = asyncio.create_task(self._read_reply_audio(track), name="webrtc-reply-audio")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _read_reply_audio(self, track: MediaStreamTrack) -> None:
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            if isinstance(frame, av.AudioFrame):
                self.frames_received += 1
                self._demux.on_audio(mono_pcm(frame), time.monotonic())

    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        *,
        sample_rate: int,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        realtime: bool = True,
        stop: asyncio.Event | None = None,
    ) -> float:
        """Play ``pcm`` into the call's microphone track; returns the ``time.monotonic()`` at
        which its last sample left (or the start time if none did). Media is always real
        time, so ``realtime`` and ``chunk_ms`` (the track sends 20 ms frames) have no effect.
        Setting ``stop`` cuts the rest."""
        pcm = require_pcm16(pcm)
        if self._closed:
            raise RealtimeConnectionClosed("the WebRTC call is closed")
        start = time.monotonic()
        samples = pcm
        if sample_rate != MEDIA_SAMPLE_RATE:
            samples = await asyncio.to_thread(resample, pcm, sample_rate, MEDIA_SAMPLE_RATE)
        self._stream_count += 1
        tag = f"stream-{self._stream_count}"
        self._microphone.push(tag, np.asarray(samples, dtype=np.int16))
        sent = self._microphone.finish(tag)
        if stop is None:
            last = await sent
        else:
            stopped = asyncio.create_task(stop.wait())
            try:
                waiters: set[asyncio.Future[Any]] = {sent, stopped}
                await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
            if not sent.done():
                self._microphone.drop(tag)
            last = await sent
        return last if last is not None else start
