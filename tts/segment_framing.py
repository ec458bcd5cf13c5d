"""Cut one segment's synthesized audio, as it arrives, into short ``SpeechChunk``s.

Backends receive audio in pieces of any size (a 1 s streaming hop, a whole sentence, a
network read that ends mid-sample); the session wants small chunks so that audio flows as
soon as some exists and a barge-in stops it at once. ``SegmentFramer`` turns raw
little-endian int16 bytes or int16 arrays into chunks of exactly ``chunk_samples``; the
segment's last chunk (``segment_end=True``) carries what is left, possibly nothing.
"""

from __future__ import annotations

import numpy as np

from tokenizer.framing import FrameSplitter
from tts.base import SpeechChunk, TtsError

_EMPTY = np.zeros(0, dtype=np.int16)


class SegmentFramer:
    def __init__(self, index: int, text: str, chunk_samples: int) -> None:
        self.index = index
        self.text = text
        self.samples = 0  # samples received so far
        self._odd_byte = b""
        self._splitter = FrameSplitter(chunk_samples)

    def push_bytes(self, data: bytes) -> list[SpeechChunk]:
        """Raw int16 PCM (little-endian) as it came off the wire; a split sample is kept."""
        if not data:
            return []
        data = self._odd_byte + data
        usable = len(data) - len(data) % 2
        self._odd_byte = data[usable:]
        return self.push_samples(np.frombuffer(data[:usable], dtype="<i2").astype(np.int16))

    def push_samples(self, pcm: np.ndarray) -> list[SpeechChunk]:
        if pcm.dtype != np.int16 or pcm.ndim != 1:
            raise TypeError(f"expected mono int16 samples, got {pcm.dtype} {pcm.shape}")
        self.samples += len(pcm)
        return [self._chunk(frame) for frame in self._splitter.push(pcm)]

    def finish(self) -> SpeechChunk:
        """The segment's last chunk; raises TtsError if the stream ended inside a sample."""
        if self._odd_byte:
            raise TtsError(
                f"the audio of segment {self.index} ended in the middle of a 16-bit sample"
            )
        rest = self._splitter.flush(pad=False)
        return self._chunk(_EMPTY if rest is None else rest, end=True)

    def _chunk(self, pcm: np.ndarray, *, end: bool = False) -> SpeechChunk:
        return SpeechChunk(
            pcm=pcm, segment_index=self.index, segment_text=self.text, segment_end=end
        )
