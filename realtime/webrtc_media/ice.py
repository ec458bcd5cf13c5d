"""ICE (STUN/TURN) servers as the browser's ``RTCIceServer`` describes them, for either peer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc import RTCIceServer
from aiortc.rtcicetransport import parse_stun_turn_uri


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
