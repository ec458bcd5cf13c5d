"""Listen while thinking: a user turn in progress, cut into audio chunks as the user speaks."""

from __future__ import annotations

import copy

import numpy as np

from realtime.conversation import UserAudioItem
from realtime.turns.audio_buffer import InputAudioBuffer
from tokenizer.chunking import SpeechChunker, split_for_engine

# A chunk closes every this many seconds of speech unless the service says otherwise.
DEFAULT_PREFILL_CHUNK_S = 2.0


class TurnInProgress:
    """The audio of the turn being spoken, closed into chunks every few seconds of speech.

    Each closed chunk becomes its own audio item for the engine, so the engine can encode
    and prefill it while the user is still talking; at the end of the turn only the last
    chunk is new.
    """

    def __init__(self, item_id: str, start_sample: int, chunk_seconds: float) -> None:
        self.item = UserAudioItem(id=item_id, complete=False)
        self.start_sample = start_sample
        self.fed_until = start_sample
        self._chunker = SpeechChunker(chunk_seconds=chunk_seconds)

    def feed(self, buffer: InputAudioBuffer, until: int) -> int:
        """Feed the audio up to absolute sample ``until``; return how many chunks closed."""
        if until <= self.fed_until:
            return 0
        closed = self._chunker.push(buffer.slice(self.fed_until, until))
        self.fed_until = until
        self.item.chunks.extend(closed)
        return len(closed)

    def finish(self, buffer: InputAudioBuffer, end_sample: int) -> UserAudioItem:
        """Close the turn at absolute sample ``end_sample`` (audio fed past it is dropped,
        unless a chunk already closed over it)."""
        self.feed(buffer, end_sample)
        rest = self._chunker.finish()
        if rest is not None and len(rest):
            overshoot = max(0, self.fed_until - end_sample)
            if overshoot:
                rest = rest[: max(0, len(rest) - overshoot)]
            if len(rest):
                self.item.chunks.append(rest)
        self.item.complete = True
        return self.item

    def preview(self, buffer: InputAudioBuffer, end_sample: int) -> UserAudioItem:
        """What ``finish(buffer, end_sample)`` would return, leaving this turn as it is."""
        clone = copy.copy(self)
        clone.item = UserAudioItem(id=self.item.id, chunks=list(self.item.chunks), complete=False)
        clone._chunker = self._chunker.copy()
        return clone.finish(buffer, end_sample)

    def snapshot(self) -> UserAudioItem:
        """The turn so far, as the engine should see it for a prefill."""
        return UserAudioItem(id=self.item.id, chunks=list(self.item.chunks), complete=False)

    @property
    def closed_samples(self) -> int:
        return int(sum(len(chunk) for chunk in self.item.chunks))


def audio_item_from_pcm(item_id: str, pcm16k: np.ndarray, max_seconds: float) -> UserAudioItem:
    """A complete audio item from one buffer, split into engine-sized chunks."""
    chunks = split_for_engine(pcm16k, max_seconds=max_seconds) if len(pcm16k) else []
    return UserAudioItem(id=item_id, chunks=chunks, complete=True)
