"""G.711 companding (ITU-T G.711): μ-law and A-law bytes to and from int16, vectorised.

Telephone audio is 8 kHz, one byte per sample. μ-law is what North America and Japan (and
Twilio's Media Streams) use, A-law the rest of the world. These are the classic integer
formulations (as in Sun's reference ``g711.c``); decoding goes through a 256-entry table.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tokenizer.pcm import require_mono_int16

G711_SAMPLE_RATE = 8_000

_ULAW_BIAS = 0x84
_ULAW_CLIP = 32_635
# The largest biased magnitude of each μ-law segment (exponent 0..7).
_ULAW_SEGMENT_ENDS = np.array([0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF, 0x1FFF, 0x3FFF, 0x7FFF])
# The largest 13-bit magnitude of each A-law segment.
_ALAW_SEGMENT_ENDS = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF])


def _codes(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if isinstance(data, bytes | bytearray | memoryview):
        return np.frombuffer(data, dtype=np.uint8)
    return np.asarray(data, dtype=np.uint8)


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """int16 samples → μ-law bytes."""
    x = require_mono_int16(pcm, "G.711 encoding").astype(np.int32)
    sign = np.where(x < 0, 0x80, 0)
    magnitude = np.minimum(np.abs(x), _ULAW_CLIP) + _ULAW_BIAS
    exponent = np.searchsorted(_ULAW_SEGMENT_ENDS, magnitude, side="left")
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    code = ~(sign | (exponent << 4) | mantissa) & 0xFF
    return code.astype(np.uint8).tobytes()


def _ulaw_table() -> npt.NDArray[np.int16]:
    code = ~np.arange(256, dtype=np.int32) & 0xFF
    exponent = (code >> 4) & 0x07
    mantissa = code & 0x0F
    magnitude = (((mantissa << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(code & 0x80, -magnitude, magnitude).astype(np.int16)


def alaw_encode(pcm: npt.ArrayLike) -> bytes:
    """int16 samples → A-law bytes."""
    x = require_mono_int16(pcm, "G.711 encoding").astype(np.int32) >> 3  # A-law works on 13 bits
    negative = x < 0
    mask = np.where(negative, 0x55, 0xD5)
    magnitude = np.where(negative, -x - 1, x)
    segment = np.searchsorted(_ALAW_SEGMENT_ENDS, magnitude, side="left")
    shift = np.where(segment < 2, 1, segment)
    in_range = (np.minimum(segment, 7) << 4) | ((magnitude >> shift) & 0x0F)
    code = np.where(segment >= 8, 0x7F, in_range) ^ mask
    return code.astype(np.uint8).tobytes()


def _alaw_table() -> npt.NDArray[np.int16]:
    code = np.arange(256, dtype=np.int32) ^ 0x55
    segment = (code & 0x70) >> 4
    value = ((code & 0x0F) << 4) + np.where(segment == 0, 8, 0x108)
    value = np.where(segment > 1, value << np.maximum(segment - 1, 0), value)
    return np.where(code & 0x80, value, -value).astype(np.int16)


_ULAW_DECODE = _ulaw_table()
_ALAW_DECODE = _alaw_table()


def ulaw_decode(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """μ-law bytes → int16 samples (a new, writable array)."""
    return _ULAW_DECODE[_codes(data)]


def alaw_decode(data: bytes | npt.NDArray[np.uint8]) -> npt.NDArray[np.int16]:
    """A-law bytes → int16 samples (a new, writable array)."""
    return _ALAW_DECODE[_codes(data)]
