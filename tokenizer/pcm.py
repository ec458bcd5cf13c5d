"""PCM16 helpers: base64 and WAV encoding/decoding, int16/float32 conversion, time arithmetic."""

from __future__ import annotations

import base64
import binascii
import io
import os
import wave

import numpy as np
import numpy.typing as npt

PCM16_BYTES_PER_SAMPLE = 2
_INT16_SCALE = 32768.0


class AudioFormatError(ValueError):
    """Audio data that cannot be decoded as what it claims to be (bad base64, PCM16, or WAV)."""


def require_mono_int16(pcm: npt.ArrayLike, what: str) -> npt.NDArray[np.int16]:
    """``pcm`` as a 1-D int16 array; ``what`` needs it so (it names the error)."""
    array = np.asarray(pcm)
    if array.dtype != np.int16:
        raise TypeError(f"{what} needs int16 samples, got dtype {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{what} needs mono (1-D) samples, got shape {array.shape}")
    return array


def pcm16_from_base64(data: str) -> npt.NDArray[np.int16]:
    """Decode base64 little-endian PCM16 into a writable int16 array ("" -> empty array)."""
    if not isinstance(data, str):
        raise AudioFormatError(f"audio must be a base64 string, got {type(data).__name__}")
    try:
        raw = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise AudioFormatError(f"audio is not valid base64 ({exc})") from exc
    if len(raw) % PCM16_BYTES_PER_SAMPLE:
        raise AudioFormatError(
            f"audio decodes to {len(raw)} bytes: PCM16 needs 2 bytes per sample, "
            "so the byte count must be even"
        )
    return np.frombuffer(raw, dtype="<i2").astype(np.int16)


def pcm16_to_base64(pcm: npt.NDArray[np.int16]) -> str:
    """Encode int16 samples as base64 little-endian PCM16."""
    samples = require_mono_int16(pcm, "pcm16_to_base64")
    return base64.b64encode(samples.astype("<i2", copy=False).tobytes()).decode("ascii")


def pcm16_to_float32(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.float32]:
    """Scale int16 samples to float32 in [-1, 1) (divide by 32768, exact)."""
    return np.asarray(pcm, dtype=np.float32) * np.float32(1.0 / _INT16_SCALE)


def float32_to_pcm16(x: npt.ArrayLike) -> npt.NDArray[np.int16]:
    """Scale float samples in [-1, 1) to int16, rounding to nearest and clipping overflow."""
    scaled = np.rint(np.asarray(x, dtype=np.float32) * np.float32(_INT16_SCALE))
    return np.clip(scaled, -32768, 32767).astype(np.int16)


def wav_bytes(pcm: npt.NDArray[np.int16], sample_rate: int) -> bytes:
    """A complete mono 16-bit PCM WAV file holding `pcm`."""
    samples = require_mono_int16(pcm, "wav_bytes")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(PCM16_BYTES_PER_SAMPLE)
        writer.setframerate(int(sample_rate))
        writer.writeframes(samples.astype("<i2", copy=False).tobytes())
    return buffer.getvalue()


def write_wav(path: str | os.PathLike[str], pcm: npt.NDArray[np.int16], sample_rate: int) -> None:
    """Write `pcm` to `path` as a mono 16-bit PCM WAV file."""
    with open(path, "wb") as file:
        file.write(wav_bytes(pcm, sample_rate))


def _samples_to_int16(raw: bytes, sample_width: int) -> npt.NDArray[np.int16]:
    """Interleaved integer PCM of a supported width as int16 (wider samples keep their top bits)."""
    if sample_width == 1:  # 8-bit WAV is unsigned, centred on 128
        return ((np.frombuffer(raw, dtype=np.uint8).astype(np.int16) - 128) << 8).astype(np.int16)
    if sample_width == 2:
        return np.frombuffer(raw, dtype="<i2").astype(np.int16)
    if sample_width == 3:
        triplets = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 3)
        # The top two bytes of a little-endian 24-bit sample are its int16 value.
        return triplets[:, 1:].copy().view("<i2").reshape(-1).astype(np.int16)
    if sample_width == 4:
        return (np.frombuffer(raw, dtype="<i4") >> 16).astype(np.int16)
    raise AudioFormatError(f"WAV sample width of {sample_width} bytes is not supported")


def read_wav(source: str | os.PathLike[str] | bytes) -> tuple[npt.NDArray[np.int16], int]:
    """Read an integer-PCM WAV file (8/16/24/32-bit, any channel count) as mono int16 and its rate.

    Several channels are averaged. Float WAVs and WAVE_FORMAT_EXTENSIBLE headers (which the
    stdlib `wave` module reads only from Python 3.12) are rejected with AudioFormatError.
    """
    # wave.open takes a str path or a file object, not a PathLike.
    stream = io.BytesIO(source) if isinstance(source, bytes | bytearray) else os.fspath(source)
    try:
        with wave.open(stream, "rb") as reader:
            channels = reader.getnchannels()
            sample_width = reader.getsampwidth()
            sample_rate = reader.getframerate()
            raw = reader.readframes(reader.getnframes())
    except (wave.Error, EOFError) as exc:
        raise AudioFormatError(f"not a readable PCM WAV file ({exc})") from exc
    if sample_rate <= 0:
        raise AudioFormatError(f"WAV header has an invalid sample rate {sample_rate}")
    usable = len(raw) - len(raw) % (sample_width * channels)
    samples = _samples_to_int16(raw[:usable], sample_width)
    if channels > 1:
        frames = samples.reshape(-1, channels).astype(np.int32)
        samples = np.rint(frames.mean(axis=1)).astype(np.int16)
    return samples, sample_rate


def duration_ms(n_samples: int, sample_rate: int) -> float:
    """How long `n_samples` last at `sample_rate`, in milliseconds."""
    return n_samples * 1000.0 / sample_rate


def samples_for_ms(ms: float, sample_rate: int) -> int:
    """How many samples `ms` milliseconds hold at `sample_rate`, rounded to the nearest sample."""
    return round(ms * sample_rate / 1000.0)
