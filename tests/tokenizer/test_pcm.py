"""PCM16 helpers: base64, int16/float32, WAV files, time arithmetic."""

from __future__ import annotations

import base64
import io
import wave
from pathlib import Path

import numpy as np
import pytest

from tests.tokenizer.signals import tone
from tokenizer.pcm import (
    AudioFormatError,
    duration_ms,
    float32_to_pcm16,
    pcm16_from_base64,
    pcm16_to_base64,
    pcm16_to_float32,
    read_wav,
    samples_for_ms,
    wav_bytes,
    write_wav,
)


def _wav_with(samples: bytes, channels: int, width: int, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(width)
        writer.setframerate(rate)
        writer.writeframes(samples)
    return buffer.getvalue()


def test_base64_round_trip_preserves_every_sample() -> None:
    pcm = np.array([0, 1, -1, 32767, -32768, 1234, -4321], dtype=np.int16)
    decoded = pcm16_from_base64(pcm16_to_base64(pcm))
    assert decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, pcm)


def test_base64_pcm16_is_little_endian() -> None:
    data = base64.b64encode(b"\x01\x00\xff\x7f\x00\x80").decode()
    np.testing.assert_array_equal(pcm16_from_base64(data), [1, 32767, -32768])
    assert base64.b64decode(pcm16_to_base64(np.array([258], dtype=np.int16))) == b"\x02\x01"


def test_decoded_samples_are_writable() -> None:
    decoded = pcm16_from_base64(pcm16_to_base64(np.arange(4, dtype=np.int16)))
    decoded[0] = 7
    assert decoded[0] == 7


def test_empty_base64_gives_empty_array() -> None:
    decoded = pcm16_from_base64("")
    assert decoded.dtype == np.int16
    assert decoded.size == 0


@pytest.mark.parametrize("bad", ["not base64!", "AAA", "AA=A", "AAAA\n"])
def test_invalid_base64_is_rejected_with_a_message_naming_base64(bad: str) -> None:
    with pytest.raises(AudioFormatError, match="not valid base64"):
        pcm16_from_base64(bad)


def test_odd_byte_count_is_rejected_with_the_count_in_the_message() -> None:
    data = base64.b64encode(b"\x00\x01\x02").decode()
    with pytest.raises(AudioFormatError, match=r"3 bytes: PCM16 needs 2 bytes per sample"):
        pcm16_from_base64(data)


def test_non_string_audio_is_rejected() -> None:
    with pytest.raises(AudioFormatError, match="base64 string, got bytes"):
        pcm16_from_base64(b"AAAA")  # type: ignore[arg-type]


def test_audio_format_error_is_a_value_error() -> None:
    assert issubclass(AudioFormatError, ValueError)


def test_encoding_refuses_non_int16_samples() -> None:
    with pytest.raises(TypeError, match="int16"):
        pcm16_to_base64(np.zeros(4, dtype=np.float32))


def test_int16_to_float32_and_back_is_exact() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int32).astype(np.int16)
    as_float = pcm16_to_float32(pcm)
    assert as_float.dtype == np.float32
    assert as_float.min() == -1.0
    assert as_float.max() < 1.0
    np.testing.assert_array_equal(float32_to_pcm16(as_float), pcm)


def test_float32_to_pcm16_clips_out_of_range_values() -> None:
    clipped = float32_to_pcm16(np.array([-2.0, -1.0, 0.5, 1.0, 3.0], dtype=np.float32))
    np.testing.assert_array_equal(clipped, [-32768, -32768, 16384, 32767, 32767])


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 24000, 48000])
def test_wav_round_trip_keeps_samples_and_rate(rate: int) -> None:
    pcm = tone(440.0, 0.25, rate)
    decoded, decoded_rate = read_wav(wav_bytes(pcm, rate))
    assert decoded_rate == rate
    np.testing.assert_array_equal(decoded, pcm)


def test_wav_bytes_is_mono_16_bit_pcm() -> None:
    with wave.open(io.BytesIO(wav_bytes(np.zeros(10, dtype=np.int16), 24000))) as reader:
        assert reader.getnchannels() == 1
        assert reader.getsampwidth() == 2
        assert reader.getframerate() == 24000
        assert reader.getnframes() == 10


def test_write_wav_then_read_wav_from_a_path(tmp_path: Path) -> None:
    pcm = tone(300.0, 0.1, 16000)
    write_wav(tmp_path / "x.wav", pcm, 16000)
    decoded, rate = read_wav(tmp_path / "x.wav")
    assert rate == 16000
    np.testing.assert_array_equal(decoded, pcm)
    decoded_from_str, _ = read_wav(str(tmp_path / "x.wav"))
    np.testing.assert_array_equal(decoded_from_str, pcm)


def test_stereo_is_downmixed_to_the_channel_average() -> None:
    left = np.array([1000, -2000, 30000], dtype=np.int16)
    right = np.array([3000, 2000, 32000], dtype=np.int16)
    interleaved = np.stack([left, right], axis=1).reshape(-1).astype("<i2").tobytes()
    decoded, rate = read_wav(_wav_with(interleaved, 2, 2, 44100))
    assert rate == 44100
    np.testing.assert_array_equal(decoded, [2000, 0, 31000])


def test_8_bit_unsigned_wav_is_scaled_to_int16() -> None:
    decoded, _ = read_wav(_wav_with(bytes([0, 128, 255]), 1, 1, 8000))
    np.testing.assert_array_equal(decoded, [-32768, 0, 32512])


def test_32_bit_wav_keeps_the_top_16_bits() -> None:
    samples = np.array([0x7FFF0000, -0x80000000, 0x00010000, -0x00010000], dtype="<i4")
    decoded, _ = read_wav(_wav_with(samples.tobytes(), 1, 4, 16000))
    np.testing.assert_array_equal(decoded, [32767, -32768, 1, -1])


def test_24_bit_wav_keeps_the_top_16_bits() -> None:
    raw = bytes([0x00, 0xFF, 0x7F, 0x00, 0x00, 0x80, 0xAB, 0x01, 0x00])
    decoded, _ = read_wav(_wav_with(raw, 1, 3, 16000))
    np.testing.assert_array_equal(decoded, [32767, -32768, 1])


@pytest.mark.parametrize("blob", [b"", b"hello, not a wav", b"RIFF\x00\x00\x00\x00WAVE"])
def test_non_wav_bytes_are_rejected(blob: bytes) -> None:
    with pytest.raises(AudioFormatError, match="not a readable PCM WAV"):
        read_wav(blob)


def test_espeak_output_reads_as_22050_hz_speech(espeak_wav_path: Path) -> None:
    pcm, rate = read_wav(espeak_wav_path)
    assert rate == 22050
    assert pcm.dtype == np.int16
    assert pcm.size / rate > 3.0
    assert np.abs(pcm).max() > 1000


def test_duration_and_sample_count_conversions() -> None:
    assert duration_ms(320, 16000) == 20.0
    assert duration_ms(441, 22050) == 20.0
    assert samples_for_ms(20, 16000) == 320
    assert samples_for_ms(20, 24000) == 480
    assert samples_for_ms(duration_ms(12345, 48000), 48000) == 12345
