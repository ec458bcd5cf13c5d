"""Ephemeral client secrets in OpenAI's GA shape: ``POST /v1/realtime/client_secrets`` mints
an ``ek_...`` that opens one session (WebSocket or WebRTC) until it expires, with the session
configuration it was minted with.

A secret is self-contained and signed (HMAC-SHA256 with a key derived from the service's API
keys): any replica of the service that has the same keys accepts it, no store is shared, and
removing the key that minted it revokes it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from realtime.protocol.errors import ProtocolError
from realtime.server.auth import ApiKeys

SECRET_PREFIX = "ek_"
DEFAULT_TTL_S = 600
MIN_TTL_S = 10
MAX_TTL_S = 7200
# A secret travels in a header or a subprotocol; websockets refuses header lines past 8 KiB.
MAX_SECRET_CHARS = 6000


class ExpiresAfter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(default=DEFAULT_TTL_S, ge=MIN_TTL_S, le=MAX_TTL_S)


class ClientSecretRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    expires_after: ExpiresAfter = Field(default_factory=ExpiresAfter)
    session: dict[str, Any] | None = None


@dataclass(frozen=True)
class ClientSecretGrant:
    """What a valid secret lets its bearer do."""

    key_id: str
    """The server key that minted it (its session counts against that key's limit)."""
    session: dict[str, Any] | None
    """The ``session.update`` patch to apply to the session it opens."""
    expires_at: int


class ClientSecretError(Exception):
    """A secret that is malformed, forged, revoked or expired."""


def parse_request(body: bytes) -> ClientSecretRequest:
    """Raises ``ProtocolError`` for a body that is not a valid request."""
    try:
        data = json.loads(body or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise ProtocolError("invalid_json", "the request body is not valid JSON") from None
    try:
        return ClientSecretRequest.model_validate(data)
    except ValidationError as exc:
        raise ProtocolError.from_validation(exc, prefix="", event_id=None) from None
    except RecursionError:
        raise ProtocolError("invalid_value", "the request body is nested too deeply") from None


class ClientSecrets:
    def __init__(self, keys: ApiKeys, clock: Callable[[], float] = time.time) -> None:
        self._keys = keys
        self._signing_key = keys.signing_key("step-realtime client secrets v1")
        self._clock = clock

    def mint(self, key_id: str, session: dict[str, Any] | None, ttl_s: int) -> tuple[str, int]:
        """A secret and its expiry (Unix seconds). Raises ``ProtocolError`` when the session
        configuration is too large to carry in a secret."""
        expires_at = int(self._clock()) + ttl_s
        claims = {"k": key_id, "e": expires_at, "s": session}
        payload = zlib.compress(json.dumps(claims, separators=(",", ":")).encode())
        value = f"{SECRET_PREFIX}{_b64(payload)}.{_b64(self._sign(payload))}"
        if len(value) > MAX_SECRET_CHARS:
            raise ProtocolError(
                "session_too_large",
                "the session configuration is too large for a client secret; set the long "
                "parts (instructions, tools) with session.update once connected",
                "session",
            )
        return value, expires_at

    def verify(self, value: str) -> ClientSecretGrant:
        if not value.startswith(SECRET_PREFIX):
            raise ClientSecretError("not a client secret")
        body, _, signature = value[len(SECRET_PREFIX) :].partition(".")
        try:
            payload = _unb64(body)
            given = _unb64(signature)
        except (binascii.Error, ValueError):
            raise ClientSecretError("malformed client secret") from None
        if not hmac.compare_digest(given, self._sign(payload)):
            raise ClientSecretError("invalid client secret")
        claims = json.loads(zlib.decompress(payload))
        grant = ClientSecretGrant(claims["k"], claims["s"], int(claims["e"]))
        if not self._keys.has_id(grant.key_id):
            raise ClientSecretError("the key that minted this client secret was revoked")
        if self._clock() >= grant.expires_at:
            raise ClientSecretError("the client secret has expired")
        return grant

    def _sign(self, payload: bytes) -> bytes:
        return hmac.new(self._signing_key, payload, hashlib.sha256).digest()


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
