"""A TTS with a simulated first-chunk latency: espeak-ng audio, the first chunk held back.

For benchmarks that assume a production TTS (CosyVoice streaming its first chunk about
150 ms after it has the first text segment) on machines that only have espeak-ng. Each
reply's first audio is released no earlier than ``first_chunk_ms`` after the reply's first
text segment was complete (espeak-ng's own synthesis time counts within that delay);
everything after it is espeak-ng's real audio, as it comes. The backend's ``name`` says
that it is simulated, and so does ``/healthz``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator

from tts.base import SpeechChunk
from tts.espeak import EspeakTts
from tts.segmenter import TextSegmenter

log = logging.getLogger(__name__)

DEFAULT_FIRST_CHUNK_MS = 150.0


class SimulatedFirstChunkTts:
    """Wraps an ``EspeakTts``; delays each reply's first audio to ``first_chunk_ms``."""

    def __init__(self, inner: EspeakTts, first_chunk_ms: float = DEFAULT_FIRST_CHUNK_MS) -> None:
        if first_chunk_ms < 0:
            raise ValueError("first_chunk_ms must be >= 0")
        self.inner = inner
        self.first_chunk_ms = first_chunk_ms
        self.name = f"{inner.name} (simulated {first_chunk_ms:g} ms first chunk)"
        self.sample_rate = inner.sample_rate
        log.warning(
            "TTS %r: the first audio chunk of each reply is delayed to a SIMULATED %g ms",
            self.name, first_chunk_ms,
        )  # fmt: skip

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        return self._speak(text, voice, speed)

    async def _speak(
        self, text: AsyncIterable[str], voice: str | None, speed: float
    ) -> AsyncGenerator[SpeechChunk, None]:
        loop = asyncio.get_running_loop()
        first_segment_at: list[float] = []

        async def watched() -> AsyncIterator[str]:
            # The inner backend segments with the same rules and the segmenter does not depend
            # on how the text is split, so this sees its first segment complete at the same delta.
            segmenter = TextSegmenter(self.inner.rules)
            async for delta in text:
                if not first_segment_at and segmenter.push(delta):
                    first_segment_at.append(loop.time())
                yield delta
            if not first_segment_at:
                first_segment_at.append(loop.time())

        held = True
        async with contextlib.aclosing(
            self.inner.speak(watched(), voice=voice, speed=speed)
        ) as chunks:
            async for chunk in chunks:
                if held and len(chunk.pcm):
                    held = False
                    ready_at = first_segment_at[0] if first_segment_at else loop.time()
                    release_at = ready_at + self.first_chunk_ms / 1000.0
                    await asyncio.sleep(max(0.0, release_at - loop.time()))
                yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()
