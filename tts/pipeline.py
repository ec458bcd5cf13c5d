"""Segment-by-segment speech: segment streamed text and synthesize segments ahead, in order.

For backends that synthesize one text segment per request (espeak-ng, a CosyVoice
server): ``speak_segments`` reads the text deltas as they come, cuts them with a
``TextSegmenter`` using the backend's rules, and synthesizes up to ``lookahead`` segments
ahead of the one whose audio is being yielded. A synthesis starts only once the one
before it has produced audio, so that it does not slow down the reply's first audio.
Closing the returned iterator cancels every synthesis it started and waits for their
cleanup.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterable, Callable

from tts.base import SpeechChunk
from tts.segmenter import SegmenterRules, TextSegmenter

SynthesizeSegment = Callable[[int, str], AsyncGenerator[SpeechChunk, None]]
"""Given a segment's index and text, yield its audio; the last chunk has segment_end=True.

Closing the generator (or cancelling the task running it) must release its resources.
"""


class _SegmentJob:
    """One segment being synthesized in its own task into a bounded queue."""

    def __init__(self, chunks: AsyncGenerator[SpeechChunk, None], buffered_chunks: int) -> None:
        self._queue: asyncio.Queue[SpeechChunk | Exception | None] = asyncio.Queue(buffered_chunks)
        self.has_output = asyncio.Event()  # its first chunk (or its end) is ready
        self.task = asyncio.create_task(self._pump(chunks))

    async def _pump(self, chunks: AsyncGenerator[SpeechChunk, None]) -> None:
        try:
            async with contextlib.aclosing(chunks):
                async for chunk in chunks:
                    await self._put(chunk)
        except Exception as error:
            await self._put(error)
        else:
            await self._put(None)

    async def _put(self, item: SpeechChunk | Exception | None) -> None:
        await self._queue.put(item)
        self.has_output.set()

    async def next_chunk(self) -> SpeechChunk | None:
        """The next chunk, None after the last one; raises what the synthesis raised."""
        item = await self._queue.get()
        if isinstance(item, Exception):
            raise item
        return item


async def speak_segments(
    text: AsyncIterable[str],
    rules: SegmenterRules,
    synthesize: SynthesizeSegment,
    *,
    lookahead: int = 1,
    buffered_chunks: int = 64,
) -> AsyncGenerator[SpeechChunk, None]:
    """Speak streamed text segment by segment, keeping ``lookahead`` segments in synthesis.

    ``buffered_chunks`` bounds the audio each synthesis may run ahead of the consumer
    (backpressure reaches the backend, e.g. a blocked espeak-ng pipe). An error from the
    text stream or a synthesis is raised once the segments before it have been yielded.
    """
    if lookahead < 0:
        raise ValueError("lookahead must be >= 0")
    segmenter = TextSegmenter(rules)
    segments: asyncio.Queue[str | Exception | None] = asyncio.Queue()
    jobs: asyncio.Queue[_SegmentJob | Exception | None] = asyncio.Queue()
    slots = asyncio.Semaphore(lookahead + 1)
    started: list[_SegmentJob] = []

    async def read_text() -> None:
        try:
            async for delta in text:
                for segment in segmenter.push(delta):
                    segments.put_nowait(segment)
            if (rest := segmenter.flush()) is not None:
                segments.put_nowait(rest)
        except Exception as error:
            segments.put_nowait(error)
        else:
            segments.put_nowait(None)

    async def start_jobs() -> None:
        index = 0
        while isinstance(item := await segments.get(), str):
            await slots.acquire()
            if started:
                # Starting the next synthesis only once this one has audio keeps the two
                # from competing for the CPU before the first audio of the reply.
                await started[-1].has_output.wait()
            job = _SegmentJob(synthesize(index, item), buffered_chunks)
            started.append(job)
            jobs.put_nowait(job)
            index += 1
        jobs.put_nowait(item)

    helpers = [asyncio.create_task(read_text()), asyncio.create_task(start_jobs())]
    try:
        while isinstance(job := await jobs.get(), _SegmentJob):
            while (chunk := await job.next_chunk()) is not None:
                yield chunk
            slots.release()
        if job is not None:
            raise job
    finally:
        tasks = [*helpers, *(job.task for job in started)]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
