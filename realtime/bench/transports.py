"""Client-side transports the benchmark can open sessions over: WebSocket (the SDK) or WebRTC."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit, urlunsplit

from realtime.client.client import RealtimeClient
from realtime.client.connection import RealtimeConnection

TRANSPORT_NAMES = ("websocket", "webrtc")
_REALTIME_PATH = "/v1/realtime"
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


@dataclass(frozen=True)
class ServiceEndpoints:
    """The service's URLs, derived from the one the user gave."""

    websocket: str  # ws(s)://host:port/v1/realtime
    http_base: str  # http(s)://host:port (plus any path prefix)
    healthz: str  # http(s)://host:port/healthz
    calls: str  # http(s)://host:port/v1/realtime/calls (WebRTC offers)
    host: str

    @property
    def loopback(self) -> bool:
        return self.host in _LOOPBACK_HOSTS


def service_endpoints(url: str) -> ServiceEndpoints:
    """Endpoints from ``ws://HOST:PORT/v1/realtime`` (or its http(s) form, or a bare
    ``HOST:PORT`` base). Whatever precedes ``/v1/realtime`` in the path is kept as a prefix,
    so a service mounted under ``/voice/v1/realtime`` works too."""
    parts = urlsplit(url if "://" in url else f"ws://{url}")
    secure = parts.scheme in ("wss", "https")
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise ValueError(f"not a ws:// or http:// URL: {url!r}")
    path = parts.path.rstrip("/")
    prefix = path[: -len(_REALTIME_PATH)] if path.endswith(_REALTIME_PATH) else path
    http_scheme, ws_scheme = ("https", "wss") if secure else ("http", "ws")

    def build(scheme: str, suffix: str, query: str = "") -> str:
        return urlunsplit((scheme, parts.netloc, prefix + suffix, query, ""))

    return ServiceEndpoints(
        websocket=build(ws_scheme, _REALTIME_PATH, parts.query),
        http_base=build(http_scheme, ""),
        healthz=build(http_scheme, "/healthz"),
        calls=build(http_scheme, _REALTIME_PATH + "/calls", parts.query),
        host=parts.hostname,
    )


class Transport(Protocol):
    """Opens Realtime sessions of one kind."""

    name: str

    async def open(
        self,
        endpoints: ServiceEndpoints,
        *,
        session: dict[str, Any] | None,
        open_timeout: float,
    ) -> RealtimeConnection:
        """Open one session; raises ``RealtimeConnectionError`` when it cannot."""
        ...


class WebSocketTransport:
    """Sessions over WebSocket, with the SDK's ``RealtimeClient``."""

    name = "websocket"

    def __init__(self, *, api_key: str | None = None) -> None:
        self.api_key = api_key

    async def open(
        self,
        endpoints: ServiceEndpoints,
        *,
        session: dict[str, Any] | None,
        open_timeout: float,
    ) -> RealtimeConnection:
        return await RealtimeClient.connect(
            endpoints.websocket, session=session, open_timeout=open_timeout, api_key=self.api_key
        )


class WebRtcTransport:
    """Sessions over WebRTC, with the SDK's ``RealtimeWebRtcClient`` (aiortc): SDP offer to
    ``POST /v1/realtime/calls``, events on the ``oai-events`` data channel, Opus audio.

    With ``allow_loopback`` the client also offers an ICE host candidate on 127.0.0.1, which
    aioice leaves out (needed when the service is reached over loopback only).
    """

    name = "webrtc"

    def __init__(self, *, allow_loopback: bool, api_key: str | None = None) -> None:
        self.allow_loopback = allow_loopback
        self.api_key = api_key

    async def open(
        self,
        endpoints: ServiceEndpoints,
        *,
        session: dict[str, Any] | None,
        open_timeout: float,
    ) -> RealtimeConnection:
        from realtime.client.webrtc import RealtimeWebRtcClient  # imports aiortc: only here

        return await RealtimeWebRtcClient.connect(
            endpoints.http_base,
            session=session,
            allow_loopback=self.allow_loopback,
            open_timeout=open_timeout,
            api_key=self.api_key,
        )


def build_transport(
    name: str, *, allow_loopback: bool = False, api_key: str | None = None
) -> Transport:
    if name == "websocket":
        return WebSocketTransport(api_key=api_key)
    if name == "webrtc":
        return WebRtcTransport(allow_loopback=allow_loopback, api_key=api_key)
    raise ValueError(f"unknown transport {name!r}; choose from {', '.join(TRANSPORT_NAMES)}")
