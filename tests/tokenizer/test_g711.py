"""G.711 μ-law and A-law against the standard's known values and FFmpeg's codecs."""

from __future__ import annotations

import av
import numpy as np
import pytest

from tokenizer.g711 import alaw_decode, alaw_encode, ulaw_decode, ulaw_encode

ALL_INT16 = np.arange(-32768, 32768, dtype=np.int16)
ALL_CODES = bytes(range(256))


def ffmpeg_decode(codec: str, data: bytes) -> np.ndarray:
    context = av.CodecContext.create(codec, "r")
    context.sample_rate = 8000
    context.layout = "mono"
    frames = context.decode(av.Packet(data))
    return np.concatenate([frame.to_ndarray().reshape(-1) for frame in frames])


def ffmpeg_encode(codec: str, pcm: np.ndarray) -> np.ndarray:
    context = av.CodecContext.create(codec, "w")
    context.sample_rate = 8000
    context.format = "s16"
    context.layout = "mono"
    frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = 8000
    return np.frombuffer(b"".join(bytes(p) for p in context.encode(frame)), dtype=np.uint8)


def test_ulaw_known_values() -> None:
    assert ulaw_encode(np.array([0, -1, 32767, -32768], np.int16)) == bytes(
        [0xFF, 0x7F, 0x80, 0x00]
    )
    assert ulaw_decode(bytes([0x00, 0x80, 0xFF, 0x7F, 0xF0])).tolist() == [-32124, 32124, 0, 0, 120]


def test_alaw_known_values() -> None:
    assert alaw_encode(np.array([0, -1, 32767, -32768], np.int16)) == bytes(
        [0xD5, 0x55, 0xAA, 0x2A]
    )
    assert alaw_decode(bytes([0xD5, 0x55, 0xAA, 0x2A, 0x80])).tolist() == [
        8,
        -8,
        32256,
        -32256,
        5504,
    ]


@pytest.mark.parametrize(
    ("codec", "decode"), [("pcm_mulaw", ulaw_decode), ("pcm_alaw", alaw_decode)]
)
def test_decoding_every_code_matches_ffmpeg(codec: str, decode) -> None:  # type: ignore[no-untyped-def]
    assert np.array_equal(decode(ALL_CODES), ffmpeg_decode(codec, ALL_CODES))


@pytest.mark.parametrize(
    ("codec", "encode", "decode"),
    [("pcm_mulaw", ulaw_encode, ulaw_decode), ("pcm_alaw", alaw_encode, alaw_decode)],
)
def test_encoding_every_sample_picks_a_neighbouring_level_like_ffmpeg(  # type: ignore[no-untyped-def]
    codec: str, encode, decode
) -> None:
    """The reference encoder truncates within a segment where FFmpeg rounds to the nearest
    level: they agree except near decision thresholds, and there never by more than one step."""
    ours = np.frombuffer(encode(ALL_INT16), dtype=np.uint8)
    theirs = ffmpeg_encode(codec, ALL_INT16)
    assert np.mean(ours == theirs) > 0.98
    levels = np.unique(decode(ALL_CODES).astype(np.int32))
    index_ours = np.searchsorted(levels, decode(ours.tobytes()))
    index_theirs = np.searchsorted(levels, decode(theirs.tobytes()))
    assert np.max(np.abs(index_ours - index_theirs)) <= 1


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_re_encoding_a_decoded_code_gives_the_code_back(encode, decode) -> None:  # type: ignore[no-untyped-def]
    codes = np.frombuffer(ALL_CODES, dtype=np.uint8)
    again = np.frombuffer(encode(decode(ALL_CODES)), dtype=np.uint8)
    negative_zero = codes == 0x7F  # μ-law's -0 decodes to 0, which encodes as +0 (0xFF)
    assert np.array_equal(again[~negative_zero], codes[~negative_zero])


@pytest.mark.parametrize(
    ("encode", "decode"), [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)]
)
def test_a_sine_survives_companding_with_speech_quality_snr(encode, decode) -> None:  # type: ignore[no-untyped-def]
    t = np.arange(8000) / 8000
    sine = np.round(8000 * np.sin(2 * np.pi * 440 * t)).astype(np.int16)
    error = decode(encode(sine)).astype(np.float64) - sine
    snr_db = 10 * np.log10(np.mean(sine.astype(np.float64) ** 2) / np.mean(error**2))
    assert snr_db > 33  # G.711 gives about 38 dB over most of its range


def test_encoding_rejects_non_int16() -> None:
    with pytest.raises(TypeError):
        ulaw_encode(np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="mono"):
        alaw_encode(np.zeros((2, 2), np.int16))
