"""The text-to-speech interface: reply text streams in, PCM tagged with its text streams out."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class SpeechChunk:
    """A piece of synthesized speech.

    ``pcm`` is mono int16 at the backend's ``sample_rate``. ``segment_index`` and
    ``segment_text`` say which text segment it speaks (the session uses them to send the
    transcript alongside the audio and to cut the transcript on barge-in); ``segment_end``
    marks the last chunk of a segment.
    """

    pcm: np.ndarray
    segment_index: int
    segment_text: str
    segment_end: bool = False


class TtsError(RuntimeError):
    """Synthesis failed; the message is shown to the client."""


class TextToSpeech(Protocol):
    """A speech backend. One instance serves the whole process.

    ``speak`` consumes reply text as it streams (arbitrary deltas, not pre-segmented: each
    backend segments with rules that suit it) and yields speech as soon as it has some.
    Closing the returned generator (``aclose``) cancels synthesis and releases its
    resources; consumers must close it (``contextlib.aclosing``).
    """

    name: str
    sample_rate: int

    def speak(
        self, text: AsyncIterable[str], *, voice: str | None = None, speed: float = 1.0
    ) -> AsyncGenerator[SpeechChunk, None]:
        """``voice`` is the session's ``audio.output.voice``: a backend uses it when it names
        one of its voices and falls back to its default otherwise; ``speed`` scales the
        speaking rate (0.25 to 1.5, as in OpenAI's session config)."""
        ...

    async def aclose(self) -> None: ...
