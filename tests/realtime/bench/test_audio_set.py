"""The benchmark's utterances: a folder of WAV files, or phrases spoken by espeak-ng (cached)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from benchmarks.harness.speech import silence, synthesize
from realtime.bench.audio_set import AudioSetError, builtin_set, load_wav_dir
from tokenizer.pcm import write_wav


def test_wav_files_are_read_in_name_order_with_their_leading_silence_removed(
    tmp_path: Path,
) -> None:
    padded = np.concatenate([silence(0.5, 16_000), synthesize("Hello there.", 16_000)])
    write_wav(tmp_path / "b.wav", padded, 16_000)
    write_wav(tmp_path / "a.wav", synthesize("Good morning.", 24_000), 24_000)
    (tmp_path / "notes.txt").write_text("not audio")

    utterances = load_wav_dir(tmp_path)

    assert [u.name for u in utterances] == ["a.wav", "b.wav"]
    assert [u.rate for u in utterances] == [24_000, 16_000]
    second = utterances[1]
    assert len(second.pcm) < len(padded) - 0.5 * 16_000  # the half second of silence is gone
    assert np.abs(second.pcm[:160].astype(np.int32)).max() > 0  # speech from the first 10 ms
    assert second.at_rate(24_000).duration_s == pytest.approx(second.duration_s, abs=0.01)


def test_a_folder_without_wav_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(AudioSetError, match=r"no \.wav files"):
        load_wav_dir(tmp_path)


def test_a_silent_wav_file_is_an_error(tmp_path: Path) -> None:
    write_wav(tmp_path / "quiet.wav", silence(1.0), 16_000)

    with pytest.raises(AudioSetError, match="silent"):
        load_wav_dir(tmp_path)


def _cache_state(directory: Path) -> dict[str, int]:
    """Cached file name -> modification time."""
    return {path.name: path.stat().st_mtime_ns for path in directory.glob("*.wav")}


async def test_builtin_phrases_are_synthesized_once_and_then_read_from_the_cache(
    tmp_path: Path,
) -> None:
    first = await builtin_set(tmp_path, ("Hello there.", "Good morning."))
    cached = await asyncio.to_thread(_cache_state, tmp_path)

    again = await builtin_set(tmp_path, ("Hello there.", "Good morning."))

    assert [u.name for u in first] == ["Hello there.", "Good morning."]
    assert len(cached) == 2
    assert await asyncio.to_thread(_cache_state, tmp_path) == cached  # not synthesized again
    assert all(np.array_equal(a.pcm, b.pcm) for a, b in zip(first, again, strict=True))
    assert all(0.3 < u.duration_s < 3.0 for u in first)
