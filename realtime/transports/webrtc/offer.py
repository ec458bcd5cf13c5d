"""Checks on an SDP offer before it reaches aiortc, and the 4xx answer for one that fails."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from aiortc.sdp import SessionDescription

SDP_MEDIA_TYPE = "application/sdp"


@dataclass
class OfferRejected(Exception):
    """An offer the service will not answer: ``status`` is the HTTP status to reply with."""

    status: int
    code: str
    message: str

    def __str__(self) -> str:
        return self.message

    def body(self) -> dict[str, Any]:
        """The error as OpenAI's REST API shapes it."""
        return {
            "error": {
                "type": "invalid_request_error",
                "code": self.code,
                "message": self.message,
                "param": None,
            }
        }


def read_offer(
    body: bytes, content_type: str | None, max_bytes: int, size: int | None = None
) -> str:
    """The offer's SDP text, or ``OfferRejected`` saying what is wrong with it.

    ``size`` is the body's full size when only part of an oversized one was read.
    """
    size = len(body) if size is None else size
    media_type = (content_type or "").split(";", 1)[0].strip().lower()
    if media_type != SDP_MEDIA_TYPE:
        raise OfferRejected(
            415,
            "unsupported_media_type",
            f"send the SDP offer as the request body with Content-Type: {SDP_MEDIA_TYPE} "
            f"(got {content_type or 'no Content-Type'})",
        )
    if size > max_bytes:
        raise OfferRejected(
            413,
            "offer_too_large",
            f"the SDP offer is {size} bytes; at most {max_bytes} bytes are accepted",
        )
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise OfferRejected(400, "invalid_offer", "the SDP offer is not UTF-8 text") from None
    if not sdp.lstrip().startswith("v=0"):
        raise OfferRejected(
            400, "invalid_offer", "the body is not an SDP offer (it must start with 'v=0')"
        )
    try:
        description = SessionDescription.parse(sdp)
    except (ValueError, IndexError, KeyError) as exc:
        raise OfferRejected(400, "invalid_offer", f"the SDP offer does not parse: {exc}") from None
    audio = [media for media in description.media if media.kind == "audio"]
    if not audio:
        raise OfferRejected(
            400, "offer_without_audio", "the SDP offer has no audio section (m=audio)"
        )
    for media in description.media:
        if media.ice is None or not media.ice.usernameFragment or not media.ice.password:
            raise OfferRejected(
                400,
                "invalid_offer",
                f"the SDP offer's {media.kind} section has no ICE credentials "
                "(a=ice-ufrag and a=ice-pwd)",
            )
        if media.dtls is None or not media.dtls.fingerprints:
            raise OfferRejected(
                400,
                "invalid_offer",
                f"the SDP offer's {media.kind} section has no DTLS fingerprint (a=fingerprint)",
            )
    codecs = {codec.mimeType.lower() for media in audio for codec in media.rtp.codecs}
    if "audio/opus" not in codecs:
        offered = ", ".join(sorted(codecs)) or "none"
        raise OfferRejected(
            400,
            "offer_without_opus",
            f"the SDP offer's audio has no Opus codec (offered: {offered}); audio is Opus",
        )
    return sdp
