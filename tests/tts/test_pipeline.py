"""Specification of segment-by-segment speech: order, lookahead, errors and cleanup."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterator

import numpy as np
import pytest

from tts.base import SpeechChunk, TtsError
from tts.pipeline import SynthesizeSegment, speak_segments
from tts.segmenter import SegmenterRules

RULES = SegmenterRules(first_min_chars=1, later_min_chars=1)
TEXT = "One. Two. Three. Four."


async def deltas(text: str, *, fail: bool = False) -> AsyncIterator[str]:
    for word in text.split(" "):
        yield word + " "
    if fail:
        raise RuntimeError("the engine stream broke")


class Recorder:
    """A synthesizer for tests: logs starts and closes, can hold or fail segments.

    A held segment stops after its first chunk until its event is set.
    """

    def __init__(self, chunks_per_segment: int = 3) -> None:
        self.chunks_per_segment = chunks_per_segment
        self.started: list[int] = []
        self.closed: list[int] = []
        self.hold: dict[int, asyncio.Event] = {}
        self.finished: dict[int, asyncio.Event] = {}
        self.gate: dict[int, asyncio.Event] = {}  # awaited before the first chunk
        self.fail_at: int | None = None

    async def synthesize(self, index: int, text: str) -> AsyncGenerator[SpeechChunk, None]:
        self.started.append(index)
        try:
            if index in self.gate:
                await self.gate[index].wait()
            if index == self.fail_at:
                raise TtsError(f"segment {index} failed")
            for number in range(self.chunks_per_segment):
                last = number == self.chunks_per_segment - 1
                yield SpeechChunk(np.full(4, index, np.int16), index, text, segment_end=last)
                if index in self.hold:
                    await self.hold[index].wait()
                await asyncio.sleep(0)
            self.finished.setdefault(index, asyncio.Event()).set()
        finally:
            self.closed.append(index)


async def collect(chunks: AsyncIterator[SpeechChunk]) -> list[SpeechChunk]:
    return [chunk async for chunk in chunks]


async def settle() -> None:
    for _ in range(50):
        await asyncio.sleep(0)


async def test_segments_come_out_in_order_even_when_a_later_one_is_ready_first() -> None:
    recorder = Recorder()
    # Segment 0 stops after its first chunk until segment 1 has been synthesized completely.
    recorder.finished[1] = asyncio.Event()
    recorder.hold[0] = recorder.finished[1]
    synthesize: SynthesizeSegment = recorder.synthesize
    chunks = await asyncio.wait_for(collect(speak_segments(deltas(TEXT), RULES, synthesize)), 5)
    assert [chunk.segment_index for chunk in chunks] == [0] * 3 + [1] * 3 + [2] * 3 + [3] * 3
    assert [chunk.segment_text for chunk in chunks if chunk.segment_end] == TEXT.split(" ")
    assert sorted(recorder.closed) == [0, 1, 2, 3]


@pytest.mark.parametrize("lookahead", [0, 1, 2])
async def test_synthesis_runs_at_most_lookahead_segments_ahead(lookahead: int) -> None:
    recorder = Recorder()
    never = asyncio.Event()
    recorder.hold = {index: never for index in range(4)}
    stream = speak_segments(deltas(TEXT), RULES, recorder.synthesize, lookahead=lookahead)
    first = await asyncio.wait_for(anext(stream), 5)
    assert first.segment_index == 0
    await settle()
    assert recorder.started == list(range(lookahead + 1))
    await asyncio.wait_for(stream.aclose(), 10)
    assert sorted(recorder.closed) == recorder.started


async def test_synthesis_error_is_raised_after_the_segments_before_it() -> None:
    recorder = Recorder()
    recorder.fail_at = 1
    received: list[int] = []
    with pytest.raises(TtsError, match="segment 1 failed"):
        async for chunk in speak_segments(deltas(TEXT), RULES, recorder.synthesize):
            received.append(chunk.segment_index)
    assert received == [0, 0, 0]
    assert sorted(recorder.closed) == recorder.started


async def test_text_stream_error_is_raised_after_the_segments_already_cut() -> None:
    recorder = Recorder(chunks_per_segment=1)
    received: list[str] = []
    with pytest.raises(RuntimeError, match="engine stream broke"):
        async for chunk in speak_segments(deltas(TEXT, fail=True), RULES, recorder.synthesize):
            received.append(chunk.segment_text)
    # "Four." was never followed by more text, so it was never certain to be complete.
    assert received == ["One.", "Two.", "Three."]


async def test_closing_the_stream_closes_every_started_synthesis_and_leaves_no_task() -> None:
    tasks_before = asyncio.all_tasks()
    recorder = Recorder()
    never = asyncio.Event()
    recorder.hold = {index: never for index in range(4)}
    stream = speak_segments(deltas(TEXT), RULES, recorder.synthesize, lookahead=2)
    await asyncio.wait_for(anext(stream), 5)
    await settle()
    await asyncio.wait_for(stream.aclose(), 10)
    assert recorder.started == [0, 1, 2]
    assert sorted(recorder.closed) == [0, 1, 2]
    assert asyncio.all_tasks() - tasks_before == set()


async def test_next_synthesis_starts_only_once_the_previous_one_has_audio() -> None:
    recorder = Recorder()
    recorder.gate[0] = asyncio.Event()
    stream = speak_segments(deltas(TEXT), RULES, recorder.synthesize, lookahead=2)
    first = asyncio.ensure_future(anext(stream))
    await settle()
    assert recorder.started == [0]
    recorder.gate[0].set()
    await asyncio.wait_for(first, 5)
    await settle()
    assert recorder.started == [0, 1, 2]
    await asyncio.wait_for(stream.aclose(), 10)


async def test_empty_text_starts_no_synthesis() -> None:
    recorder = Recorder()
    assert await collect(speak_segments(deltas("   "), RULES, recorder.synthesize)) == []
    assert recorder.started == []
