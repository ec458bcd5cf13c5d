"""SDP offers made by aiortc, as a caller would send them, for the offer-handling tests."""

from __future__ import annotations

from aiortc import RTCPeerConnection, RTCRtpSender


async def make_offer(*, audio: bool = True, codecs: tuple[str, ...] = ("audio/opus",)) -> str:
    """An offer with (or without) a send-receive audio section offering ``codecs``, and the
    ``oai-events`` data channel."""
    pc = RTCPeerConnection()
    try:
        if audio:
            transceiver = pc.addTransceiver("audio", direction="sendrecv")
            wanted = [
                codec
                for codec in RTCRtpSender.getCapabilities("audio").codecs
                if codec.mimeType.lower() in codecs
            ]
            transceiver.setCodecPreferences(wanted)
        pc.createDataChannel("oai-events")
        await pc.setLocalDescription(await pc.createOffer())
        return str(pc.localDescription.sdp)
    finally:
        await pc.close()
