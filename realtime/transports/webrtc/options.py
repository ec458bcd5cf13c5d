"""WebRTC settings of one service: ICE (STUN/TURN) servers, loopback candidates, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri

EVENTS_CHANNEL_LABEL = "oai-events"
# WebRTC carries Opus, whose clock is 48 kHz; aiortc decodes it to 48 kHz frames.
MEDIA_SAMPLE_RATE = 48_000
MEDIA_FRAME_MS = 20


class IceServerError(ValueError):
    """An ICE server description that cannot be used."""


@dataclass(frozen=True)
class IceServer:
    """One STUN or TURN server, as the browser's ``RTCIceServer`` describes it."""

    url: str
    username: str | None = None
    credential: str | None = None

    def __post_init__(self) -> None:
        try:
            parsed = parse_stun_turn_uri(self.url)
        except ValueError as exc:
            raise IceServerError(f"bad ICE server URL {self.url!r}: {exc}") from None
        if parsed["scheme"] in ("turn", "turns") and (not self.username or not self.credential):
            raise IceServerError(f"TURN server {self.url!r} needs a username and a credential")

    @classmethod
    def parse(cls, text: str) -> IceServer:
        """``URL[,username=NAME,credential=SECRET]``, e.g. ``stun:stun.example.org:3478`` or
        ``turn:turn.example.org:3478?transport=udp,username=alice,credential=s3cret``."""
        url, *rest = (part.strip() for part in text.split(","))
        fields: dict[str, str] = {}
        for part in rest:
            key, sep, value = part.partition("=")
            if not sep or key not in ("username", "credential"):
                raise IceServerError(
                    f"bad ICE server option {part!r} in {text!r}: expected username=... or "
                    "credential=..."
                )
            fields[key] = value
        return cls(url, fields.get("username"), fields.get("credential"))

    def for_aiortc(self) -> RTCIceServer:
        return RTCIceServer(urls=self.url, username=self.username, credential=self.credential)

    def for_browser(self) -> dict[str, Any]:
        """The ``RTCIceServer`` dictionary a browser's ``RTCPeerConnection`` takes."""
        server: dict[str, Any] = {"urls": [self.url]}
        if self.username is not None:
            server["username"] = self.username
        if self.credential is not None:
            server["credential"] = self.credential
        return server


@dataclass(frozen=True)
class WebRtcOptions:
    """How the service answers WebRTC calls.

    No STUN or TURN server is used unless configured (aiortc would otherwise ask a public
    STUN server). ``allow_loopback`` adds 127.0.0.1 host candidates, which aioice leaves
    out: without them no connection forms on a host whose only interface is loopback.
    """

    ice_servers: tuple[IceServer, ...] = ()
    allow_loopback: bool = False
    max_offer_bytes: int = 64 * 1024
    # From the answer to an established connection; a call that never connects is dropped.
    connect_timeout_s: float = 10.0
    # No inbound audio for this long on an established call means the peer is gone (a
    # closed tab stops sending without saying so; ICE consent takes ~30 s to notice).
    media_timeout_s: float = 15.0
    # Reply audio released ahead of playback. The outgoing track plays at the RTP clock,
    # so a couple of frames cover scheduling jitter; more would only be audio that a
    # barge-in has to throw away.
    audio_lead_ms: float = 60.0
    # Frames the caller's audio is held in aiortc's receive buffer before it reaches the VAD
    # (aiortc plays safe with 4, i.e. 80 ms; see media.shorten_receive_buffer). None keeps 4.
    receive_prefetch_frames: int | None = 1

    def rtc_configuration(self) -> RTCConfiguration:
        return RTCConfiguration(iceServers=[server.for_aiortc() for server in self.ice_servers])

    def browser_ice_servers(self) -> list[dict[str, Any]]:
        return [server.for_browser() for server in self.ice_servers]
