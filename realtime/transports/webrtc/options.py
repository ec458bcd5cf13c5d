"""WebRTC settings of one service: ICE (STUN/TURN) servers, loopback candidates, limits."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCConfiguration

from realtime.webrtc_media.ice import IceServer


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
