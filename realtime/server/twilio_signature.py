"""Twilio's request signature: a Media Streams WebSocket cannot carry our API key (Twilio
opens it), but Twilio signs the handshake: ``X-Twilio-Signature`` is the base64 HMAC-SHA1 of
the URL it connected to, keyed with the account's auth token."""

from __future__ import annotations

import base64
import hashlib
import hmac

SIGNATURE_HEADER = "x-twilio-signature"
AUTH_TOKEN_VARIABLE = "TWILIO_AUTH_TOKEN"


def twilio_signature(auth_token: str, url: str) -> str:
    digest = hmac.new(auth_token.encode(), url.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def valid_twilio_signature(auth_token: str, url: str, signature: str | None) -> bool:
    if not signature:
        return False
    return hmac.compare_digest(twilio_signature(auth_token, url), signature)
