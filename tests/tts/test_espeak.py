"""Specification of the espeak-ng backend, run against the real espeak-ng program."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from tts.base import SpeechChunk, TextToSpeech, TtsError
from tts.espeak import EspeakTts, parse_wav_header

pytestmark = pytest.mark.skipif(
    shutil.which("espeak-ng") is None, reason="needs Debian's espeak-ng"
)

REPLY = (
    "Good question, let me think about it. The answer is simple: the sky looks blue "
    "because air scatters blue light more than red light. That is all."
)
LONG_SENTENCE = (
    "This sentence is deliberately long so that espeak-ng has far more audio to write than "
    "the pipes and buffers between us can hold, which keeps the process alive and blocked "
    "on its output while we are still listening to the first segment."
)


async def words(text: str) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "


async def collect(chunks: AsyncIterator[SpeechChunk]) -> list[SpeechChunk]:
    return [chunk async for chunk in chunks]


def pid_recording_espeak(directory: Path) -> tuple[str, Path]:
    """An espeak-ng stand-in that logs its pid, then becomes espeak-ng (same pid)."""
    pids = directory / "pids"
    script = directory / "espeak-ng-with-pid"
    script.write_text(f'#!/bin/sh\necho $$ >> "{pids}"\nexec espeak-ng "$@"\n')
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script), pids


def read_pids(pids: Path) -> list[int]:
    return [int(line) for line in pids.read_text().split()] if pids.exists() else []


async def wait_for_pids(pids: Path, count: int) -> list[int]:
    for _ in range(500):
        if len(found := read_pids(pids)) >= count:
            return found
        await asyncio.sleep(0.01)
    raise AssertionError(f"expected {count} espeak-ng processes, saw {read_pids(pids)}")


def is_running_or_zombie(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_espeak_backend_satisfies_the_tts_protocol() -> None:
    backend: TextToSpeech = EspeakTts()
    assert backend.name == "espeak-ng"
    assert backend.sample_rate == 22050


async def test_speaking_streamed_text_yields_audible_speech_of_plausible_duration() -> None:
    backend = EspeakTts()
    chunks = await asyncio.wait_for(collect(backend.speak(words(REPLY))), 30)
    audio = np.concatenate([chunk.pcm for chunk in chunks]).astype(np.float64)
    assert chunks[0].pcm.dtype == np.int16
    rms = float(np.sqrt(np.mean(audio**2)))
    assert rms > 500
    seconds = len(audio) / backend.sample_rate
    spoken_at_175_wpm = len(REPLY.split()) / (175 / 60)
    assert 0.5 * spoken_at_175_wpm < seconds < 2.0 * spoken_at_175_wpm


async def test_chunk_segment_texts_in_order_cover_the_text() -> None:
    chunks = await asyncio.wait_for(collect(EspeakTts().speak(words(REPLY))), 30)
    indexes = [chunk.segment_index for chunk in chunks]
    assert indexes == sorted(indexes)
    ends = [chunk for chunk in chunks if chunk.segment_end]
    assert [chunk.segment_index for chunk in ends] == list(range(len(ends)))
    assert len(ends) >= 3
    assert " ".join(chunk.segment_text for chunk in ends) == " ".join(REPLY.split())
    assert ends[0].segment_text == "Good question,"
    assert all(chunk.segment_text == ends[chunk.segment_index].segment_text for chunk in chunks)


async def test_audio_comes_in_frames_of_20_ms_and_each_segment_ends_with_audio() -> None:
    chunks = await asyncio.wait_for(collect(EspeakTts().speak(words(REPLY))), 30)
    frame = 22050 * 20 // 1000
    assert all(len(chunk.pcm) == frame for chunk in chunks if not chunk.segment_end)
    assert all(0 < len(chunk.pcm) <= frame for chunk in chunks if chunk.segment_end)


async def test_first_audio_arrives_before_the_whole_text_has_been_pushed() -> None:
    deltas: asyncio.Queue[str | None] = asyncio.Queue()
    text_finished = False

    async def text() -> AsyncIterator[str]:
        nonlocal text_finished
        while (delta := await deltas.get()) is not None:
            yield delta
        text_finished = True

    deltas.put_nowait("Good question, let me ")
    stream = EspeakTts().speak(text())
    try:
        first = await asyncio.wait_for(anext(stream), 10)
        assert not text_finished
        assert first.segment_index == 0
        assert first.segment_text == "Good question,"
        assert len(first.pcm) > 0
        deltas.put_nowait("think about it.")
        deltas.put_nowait(None)
        rest = await asyncio.wait_for(collect(stream), 30)
    finally:
        await asyncio.wait_for(stream.aclose(), 10)
    assert text_finished
    assert rest[-1].segment_text == "let me think about it."


async def test_next_segment_is_synthesized_while_the_current_one_is_yielded(
    tmp_path: Path,
) -> None:
    executable, pids = pid_recording_espeak(tmp_path)
    stream = EspeakTts(executable=executable, lookahead=1).speak(
        words(f"Good question, {LONG_SENTENCE} {LONG_SENTENCE} {LONG_SENTENCE}")
    )
    try:
        await asyncio.wait_for(anext(stream), 10)
        await wait_for_pids(pids, 2)
        await asyncio.sleep(0.3)
        assert len(read_pids(pids)) == 2  # bounded: segment 2 waits for segment 0 to end
    finally:
        await asyncio.wait_for(stream.aclose(), 10)


async def test_closing_the_stream_kills_and_reaps_espeak_processes(tmp_path: Path) -> None:
    tasks_before = asyncio.all_tasks()
    executable, pids = pid_recording_espeak(tmp_path)
    stream = EspeakTts(executable=executable).speak(words(f"Good question, {LONG_SENTENCE}"))
    await asyncio.wait_for(anext(stream), 10)
    first, second = await wait_for_pids(pids, 2)
    # The long segment's process is blocked writing audio nobody has read yet.
    assert is_running_or_zombie(second)
    await asyncio.wait_for(stream.aclose(), 10)
    assert not is_running_or_zombie(first)
    assert not is_running_or_zombie(second)
    assert asyncio.all_tasks() - tasks_before == set()


async def test_cancelling_the_task_that_plays_the_stream_kills_and_reaps_espeak_processes(
    tmp_path: Path,
) -> None:
    tasks_before = asyncio.all_tasks()
    executable, pids = pid_recording_espeak(tmp_path)
    first_chunk = asyncio.Event()

    async def play() -> None:
        speech = EspeakTts(executable=executable).speak(words(f"Good question, {LONG_SENTENCE}"))
        async with contextlib.aclosing(speech):
            async for _ in speech:
                first_chunk.set()
                await asyncio.Event().wait()  # a listener that never finishes playing

    player = asyncio.create_task(play())
    await asyncio.wait_for(first_chunk.wait(), 10)
    _, second = await wait_for_pids(pids, 2)
    assert is_running_or_zombie(second)
    player.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(player, 10)
    assert not any(is_running_or_zombie(pid) for pid in read_pids(pids))
    assert asyncio.all_tasks() - tasks_before == set()


async def test_closing_the_backend_kills_running_synthesis(tmp_path: Path) -> None:
    executable, pids = pid_recording_espeak(tmp_path)
    backend = EspeakTts(executable=executable)
    stream = backend.speak(words(f"Good question, {LONG_SENTENCE}"))
    try:
        await asyncio.wait_for(anext(stream), 10)
        _, second = await wait_for_pids(pids, 2)
        await asyncio.wait_for(backend.aclose(), 10)
        assert not is_running_or_zombie(second)
        with pytest.raises(TtsError, match="closed"):
            await asyncio.wait_for(collect(stream), 10)
    finally:
        await asyncio.wait_for(stream.aclose(), 10)
    with pytest.raises(TtsError, match="closed"):
        await collect(backend.speak(words("Hello there, friend.")))


async def test_empty_text_yields_nothing_and_starts_no_process(tmp_path: Path) -> None:
    executable, pids = pid_recording_espeak(tmp_path)
    backend = EspeakTts(executable=executable)
    assert await collect(backend.speak(words(""))) == []
    assert await collect(backend.speak(words(" \n "))) == []
    assert read_pids(pids) == []


async def test_missing_executable_raises_tts_error() -> None:
    backend = EspeakTts(executable="espeak-ng-that-does-not-exist")
    with pytest.raises(TtsError, match="is not installed: apt-get install espeak-ng"):
        await collect(backend.speak(words("Hello there, friend.")))


async def test_espeak_failure_raises_tts_error_with_its_stderr() -> None:
    backend = EspeakTts(voice="nosuchvoice")
    with pytest.raises(TtsError, match="voice does not exist"):
        await collect(backend.speak(words("Hello there, friend.")))


def test_wav_header_is_parsed_from_a_stream_with_espeak_placeholder_sizes() -> None:
    wav = subprocess.run(
        ["espeak-ng", "--stdout", "Hello."], capture_output=True, check=True, timeout=30
    ).stdout
    header = parse_wav_header(wav)
    assert header is not None
    assert (header.sample_rate, header.channels, header.bits_per_sample) == (22050, 1, 16)
    assert wav[header.data_offset - 8 : header.data_offset - 4] == b"data"
    # The data size espeak-ng writes is a placeholder, not the real length.
    assert int.from_bytes(wav[header.data_offset - 4 : header.data_offset], "little") != (
        len(wav) - header.data_offset
    )
    assert all(parse_wav_header(wav[:size]) is None for size in range(header.data_offset))


def test_non_wav_output_is_an_error() -> None:
    with pytest.raises(TtsError):
        parse_wav_header(b"Error: something went wrong\n")
