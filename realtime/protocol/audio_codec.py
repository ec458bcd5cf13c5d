"""Audio payloads on the wire: base64 of PCM16 or G.711 bytes, as the session's format says."""

from __future__ import annotations

import base64
import binascii

import numpy as np
import numpy.typing as npt

from realtime.protocol.session_config import AudioFormat, PcmaFormat, PcmuFormat
from tokenizer.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode
from tokenizer.pcm import AudioFormatError, pcm16_from_base64, pcm16_to_base64


def _bytes_from_base64(data: str) -> bytes:
    if not isinstance(data, str):
        raise AudioFormatError(f"audio must be a base64 string, got {type(data).__name__}")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioFormatError(f"audio is not valid base64 ({exc})") from exc


def decode_audio(data: str, audio_format: AudioFormat) -> npt.NDArray[np.int16]:
    """A base64 payload in ``audio_format`` as int16 samples at ``audio_format.rate``.

    Raises ``AudioFormatError`` for bad base64 (or an odd byte count for PCM16).
    """
    if isinstance(audio_format, PcmuFormat):
        return ulaw_decode(_bytes_from_base64(data))
    if isinstance(audio_format, PcmaFormat):
        return alaw_decode(_bytes_from_base64(data))
    return pcm16_from_base64(data)


def encode_audio(pcm: npt.NDArray[np.int16], audio_format: AudioFormat) -> str:
    """int16 samples, already at ``audio_format.rate``, as a base64 payload."""
    if isinstance(audio_format, PcmuFormat):
        return base64.b64encode(ulaw_encode(pcm)).decode("ascii")
    if isinstance(audio_format, PcmaFormat):
        return base64.b64encode(alaw_encode(pcm)).decode("ascii")
    return pcm16_to_base64(pcm)
