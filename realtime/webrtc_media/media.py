"""WebRTC audio: a real-time paced outgoing track fed with tagged PCM, and inbound frame decoding.

Outgoing: ``PacedAudioTrack`` is what aiortc's sender pulls 20 ms frames from, at the RTP
clock. It plays whatever PCM has been pushed (each piece tagged with the response it
belongs to), and silence when there is none, so the stream never stalls. It holds only
what its producer released and checks every piece against a staleness predicate right
before sending it, so a cancelled response stops within one frame.

Inbound: ``mono_pcm`` turns one decoded aiortc frame (48 kHz stereo s16 for Opus) into
mono int16 samples; ``shorten_receive_buffer`` trims aiortc's playout-sized receive buffer.
"""

from __future__ import annotations

import asyncio
import fractions
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt
from aiortc import RTCRtpReceiver
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

EVENTS_CHANNEL_LABEL = "oai-events"
# WebRTC carries Opus, whose clock is 48 kHz; aiortc decodes it to 48 kHz frames.
MEDIA_SAMPLE_RATE = 48_000
MEDIA_FRAME_MS = 20
Pcm16 = npt.NDArray[np.int16]


class PlaybackListener(Protocol):
    """Told when a tag's audio starts leaving the track and when the last of it has left."""

    def playback_started(self, tag: str) -> None: ...

    def playback_finished(self, tag: str) -> None: ...


@dataclass
class _Piece:
    tag: str
    pcm: Pcm16


@dataclass
class _TagState:
    started: bool = False
    finished: bool = False
    queued: int = 0
    last_sent_at: float | None = None
    sent: asyncio.Future[float | None] | None = None

    def resolve(self) -> None:
        if self.sent is not None and not self.sent.done():
            self.sent.set_result(self.last_sent_at)


def _never_stale(tag: str) -> bool:
    return False


class PacedAudioTrack(MediaStreamTrack):
    """A mono int16 audio track that sends pushed PCM in real time, silence in between."""

    kind = "audio"

    def __init__(
        self,
        *,
        sample_rate: int = MEDIA_SAMPLE_RATE,
        frame_ms: int = MEDIA_FRAME_MS,
        is_stale: Callable[[str], bool] = _never_stale,
        is_paused: Callable[[str], bool] = _never_stale,
        listener: PlaybackListener | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.frame_samples = sample_rate * frame_ms // 1000
        self.is_stale = is_stale
        self.is_paused = is_paused
        """A paused tag holds its queued audio where it is (silence plays meanwhile)."""
        self.listener = listener
        self._clock = clock
        self._time_base = fractions.Fraction(1, sample_rate)
        self._pieces: deque[_Piece] = deque()
        self._tags: dict[str, _TagState] = {}
        self._started_at: float | None = None
        self._pts = 0
        self.frames_sent = 0

    # -- producer side ---------------------------------------------------------------------

    def push(self, tag: str, pcm: Pcm16) -> None:
        """Queue mono int16 samples at the track's rate, to play after what is queued."""
        if len(pcm) == 0 or self.readyState != "live":
            return
        self._pieces.append(_Piece(tag, pcm))
        self._tag(tag).queued += len(pcm)

    def finish(self, tag: str) -> asyncio.Future[float | None]:
        """No more audio for ``tag``. The future resolves once its queued audio has left
        the track (or was dropped), to when its last sample left (``clock()``), if any did."""
        state = self._tag(tag)
        state.finished = True
        if state.sent is None:
            state.sent = asyncio.get_running_loop().create_future()
        sent = state.sent
        if state.queued == 0:
            self._finished(tag, state)
        return sent

    def drop(self, tag: str) -> None:
        """Throw away the queued audio of ``tag`` and forget it (no ``finished`` notice)."""
        if any(piece.tag == tag for piece in self._pieces):
            self._pieces = deque(piece for piece in self._pieces if piece.tag != tag)
        state = self._tags.pop(tag, None)
        if state is not None:
            state.resolve()

    def queued_ms(self, tag: str | None = None) -> float:
        if tag is None:
            samples = sum(len(piece.pcm) for piece in self._pieces)
        else:
            state = self._tags.get(tag)
            samples = state.queued if state is not None else 0
        return 1000.0 * samples / self.sample_rate

    def stop(self) -> None:
        self._pieces.clear()
        for state in self._tags.values():
            state.resolve()
        self._tags.clear()
        super().stop()

    # -- aiortc's sender side ----------------------------------------------------------------

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError
        if self._started_at is None:
            self._started_at = self._clock()
        else:
            self._pts += self.frame_samples
            wait = self._started_at + self._pts / self.sample_rate - self._clock()
            if wait > 0:
                await asyncio.sleep(wait)
        if self.readyState != "live":
            raise MediaStreamError
        pcm = self._next_frame_samples()
        frame = av.AudioFrame(format="s16", layout="mono", samples=self.frame_samples)
        frame.planes[0].update(pcm.tobytes())
        frame.pts = self._pts
        frame.sample_rate = self.sample_rate
        frame.time_base = self._time_base
        self.frames_sent += 1
        return frame

    def _next_frame_samples(self) -> Pcm16:
        out = np.zeros(self.frame_samples, dtype=np.int16)
        filled = 0
        now = self._clock()
        while filled < self.frame_samples and self._pieces:
            head = self._pieces[0]
            if self.is_stale(head.tag):
                self.drop(head.tag)
                continue
            if self.is_paused(head.tag):
                break
            state = self._tag(head.tag)
            if not state.started:
                # Start a tag on a whole frame, so that its first frame is not cut by a
                # producer that has released less than a frame so far.
                if filled or (state.queued < self.frame_samples and not state.finished):
                    break
                state.started = True
                if self.listener is not None:
                    self.listener.playback_started(head.tag)
            take = min(self.frame_samples - filled, len(head.pcm))
            out[filled : filled + take] = head.pcm[:take]
            filled += take
            state.queued -= take
            state.last_sent_at = now
            if take == len(head.pcm):
                self._pieces.popleft()
            else:
                head.pcm = head.pcm[take:]
            if state.queued == 0 and state.finished:
                self._finished(head.tag, state)
        return out

    # -- internals -----------------------------------------------------------------------

    def _tag(self, tag: str) -> _TagState:
        state = self._tags.get(tag)
        if state is None:
            state = self._tags[tag] = _TagState()
        return state

    def _finished(self, tag: str, state: _TagState) -> None:
        self._tags.pop(tag, None)
        state.resolve()
        if state.started and self.listener is not None:
            self.listener.playback_finished(tag)


_JITTER_BUFFER_ATTRIBUTE = "_RTCRtpReceiver__jitter_buffer"
_JITTER_BUFFER_CAPACITY = 16


def shorten_receive_buffer(receiver: RTCRtpReceiver, prefetch_frames: int) -> bool:
    """Hold inbound audio back by ``prefetch_frames`` frames instead of aiortc's fixed 4.

    aiortc's audio receiver releases a frame only once 4 later ones have arrived: 80 ms of
    Opus at 20 ms per packet, a playout buffer. The service does not play the caller's
    audio, it feeds it to the VAD and the engine, and every millisecond of it delays the end
    of the turn, so 1 frame (the least aiortc's buffer allows: a frame is known to be
    complete when the next one starts) is enough. Packets out of order within the buffer's
    16 frames are still put back in order. Returns False, changing nothing, when aiortc's
    receiver no longer has that buffer.
    """
    current = getattr(receiver, _JITTER_BUFFER_ATTRIBUTE, None)
    if not isinstance(current, JitterBuffer):
        return False
    setattr(
        receiver,
        _JITTER_BUFFER_ATTRIBUTE,
        JitterBuffer(capacity=_JITTER_BUFFER_CAPACITY, prefetch=prefetch_frames),
    )
    return True


def mono_pcm(frame: av.AudioFrame) -> Pcm16:
    """One decoded audio frame as mono int16 samples (channels averaged)."""
    data = frame.to_ndarray()
    channels = len(frame.layout.channels)
    if frame.format.is_planar:
        per_channel = data.reshape(channels, -1)
    else:
        per_channel = data.reshape(-1, channels).T
    if np.issubdtype(per_channel.dtype, np.floating):
        mixed = per_channel.mean(axis=0) * 32767.0
    elif channels == 1:
        return np.asarray(per_channel[0], dtype=np.int16)
    else:
        mixed = per_channel.astype(np.int32).sum(axis=0) / channels
    return np.clip(np.round(mixed), -32768, 32767).astype(np.int16)
