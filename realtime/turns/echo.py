"""Server-side echo cancellation (``audio.input.x_echo_cancellation``): WebRTC's AEC3 as an
``AudioStage``, with the reply audio this service sent as its far-end reference.

A speakerphone, a laptop without headphones or an embedded device plays the reply and its
microphone hears it again; without cancellation the VAD takes the reply for the user
talking over it and the agent interrupts itself. Browsers cancel echo themselves (WebRTC
calls leave this off); WebSocket clients and phone calls often do not.

The reference: each reply frame the session's outbox sends is placed on the microphone's
timeline at the moment it is expected to play (the outbox's playback model, corrected on
phone calls by Twilio's marks, which say when the audio was played). The microphone's
timeline maps input sample ``n`` to ``anchor + n / 16000`` s, the anchor following the
earliest arrival seen (network jitter only makes audio late), and drifting up slowly so that
a client whose clock runs slow does not pull the two apart. A reply cut short (a barge-in,
a cancel) drops the reference placed after the cut, as the client drops that audio (the
outbox's model). The reference therefore always
leads its echo (by the client's playback buffer, the room and the uplink); AEC3's own delay
estimator finds that lead, up to about half a second.

The canceller is AEC3 of WebRTC's audio processing module through LiveKit's ``livekit``
wheel (Apache-2.0; its libwebrtc is BSD-3-Clause; native code, no model file). It works on
10 ms blocks, so the stage delays the input by 10 ms, and costs about 8 ms of CPU per second
of audio (1% of a core) (``benchmarks/echo_cancellation.py``). LiveKit's build replaced the
``pywebrtc-audio`` wheel's: on people's speech in that benchmark, the older build let the
echo through at the start of the replies after some barge-ins (the agent then cut itself off,
reply after reply) and lowered a handset caller's voice by 13 dB 2 s into the first reply,
against none and 2 dB with LiveKit's.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

import numpy as np

from realtime.protocol.session_config import EchoCancellation
from tokenizer import ENGINE_SAMPLE_RATE
from tokenizer.resample import StreamResampler

ECHO_CANCELLATION_STAGE = "echo_cancellation"

_RATE = ENGINE_SAMPLE_RATE
_BLOCK = _RATE // 100  # AEC3's 10 ms block
_HISTORY_S = 20.0  # how far ahead of the microphone the reference may be placed
_JOIN_S = 0.03  # a frame this close to the end of the last one continues it
# Per call (a 20 ms frame, typically), how far the anchor moves toward a later arrival: a
# time constant of about 10 s. The earliest arrival is the right anchor (the reference then
# leads its echo by the room's delay and the least latency seen, however the network
# jitters); rising only lets it follow a client whose clock runs slow, which would
# otherwise pull the reference further and further ahead of its echo.
_ANCHOR_RISE = 0.002
_MAX_OFFSET_S = 2.0
_SENT_KEPT = 1000  # frames whose modelled play time a Twilio mark may ask about


class FarEndReference:
    """The reply audio as the microphone may hear it, on the microphone's sample timeline.

    ``reply_sent`` places a frame at its expected play time; ``reply_played`` (a phone call's
    mark) corrects that expectation; ``take`` hands out the reference for the next input
    samples, zeros where nothing played. Positions are absolute microphone sample indices,
    kept in a ring of ``_HISTORY_S`` ahead of the microphone."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._anchor: float | None = None  # wall time of microphone sample 0
        self._received = 0  # microphone samples that arrived
        self._consumed = 0  # microphone samples whose reference was taken
        self._ring = np.zeros(round(_HISTORY_S * _RATE), dtype=np.int16)
        self._written_end: int | None = None  # where the last placed frame ended
        self._run_response: str | None = None  # whose audio the current run is
        self._resampler: StreamResampler | None = None
        self._offset_s = 0.0  # how much later than modelled the far end plays (marks)
        self._sent: deque[tuple[str, float, float]] = deque(maxlen=_SENT_KEPT)
        self.placed_samples = 0
        self.late_samples = 0
        """Reference samples that came after their microphone audio had gone (dropped)."""

    @property
    def offset_s(self) -> float:
        """How much later than the outbox's model the far end was last reported to play."""
        return self._offset_s

    # -- the microphone's side -------------------------------------------------------------

    def heard(self, samples: int) -> None:
        """``samples`` more microphone samples arrived now."""
        self._received += samples
        first = self._clock() - self._received / _RATE
        if self._anchor is None or first < self._anchor:
            self._anchor = first
        else:
            self._anchor += (first - self._anchor) * _ANCHOR_RISE

    def take(self, samples: int) -> np.ndarray:
        """The reference for the next ``samples`` microphone samples (at most the ring)."""
        index = (self._consumed + np.arange(samples)) % len(self._ring)
        out = self._ring[index]
        self._ring[index] = 0
        self._consumed += samples
        return out

    # -- the reply's side ------------------------------------------------------------------

    def reply_sent(
        self, response_id: str, pcm: np.ndarray, sample_rate: int, play_at: float, sent_ms: float
    ) -> None:
        """A reply frame left for the far end, expected to start playing at ``play_at``
        (monotonic s); ``sent_ms``: the response's audio sent so far, this frame included."""
        self._sent.append((response_id, sent_ms, play_at + len(pcm) / sample_rate))
        if self._anchor is None:
            return  # no microphone audio yet: nothing to align with
        position = round((play_at + self._offset_s - self._anchor) * _RATE)
        resampler = self._resampler
        if (
            self._written_end is not None
            and abs(position - self._written_end) <= _JOIN_S * _RATE
            and resampler is not None
            and resampler.in_rate == sample_rate
        ):
            position = self._written_end  # the same run of audio goes on
        else:
            self._end_run()
            # soxr's quick (cubic) quality holds back a sample or two where LQ holds about
            # 20 ms: the reference must be in place before its echo, and AEC3 models the
            # echo path, not the far end's exact spectrum.
            resampler = self._resampler = StreamResampler(sample_rate, _RATE, quality="QQ")
            self._written_end = position
            self._run_response = response_id
        self._write(resampler.process(np.asarray(pcm, dtype=np.int16)))

    def reply_played(self, response_id: str, played_ms: float) -> None:
        """The far end reports (now) that the response's first ``played_ms`` were played."""
        for rid, sent_ms, modelled_end in reversed(self._sent):
            if rid == response_id and sent_ms <= played_ms + 0.5:
                lateness = self._clock() - modelled_end
                self._offset_s = min(max(lateness, 0.0), _MAX_OFFSET_S)
                return

    def reply_stopped(self, response_id: str, at: float) -> None:
        """The response was cut at ``at`` (monotonic s): the far end drops the rest of it, so
        the reference placed after that moment would be a far end with no echo."""
        if self._anchor is None or self._written_end is None or self._run_response != response_id:
            return
        cut = max(round((at + self._offset_s - self._anchor) * _RATE), self._consumed)
        last = min(self._written_end, self._consumed + len(self._ring))
        if last > cut:
            self._ring[np.arange(cut, last) % len(self._ring)] = 0
        self._resampler = None  # its held-back samples belong to the dropped audio
        self._written_end = None
        self._run_response = None

    def _end_run(self) -> None:
        if self._resampler is not None:
            self._write(self._resampler.flush())
        self._resampler = None
        self._written_end = None
        self._run_response = None

    def _write(self, pcm16k: np.ndarray) -> None:
        start = self._written_end
        if start is None or not len(pcm16k):
            return
        self._written_end = start + len(pcm16k)
        first = max(start, self._consumed)
        last = min(start + len(pcm16k), self._consumed + len(self._ring))
        self.late_samples += max(0, min(first, start + len(pcm16k)) - start)
        if last > first:
            self._ring[np.arange(first, last) % len(self._ring)] = pcm16k[
                first - start : last - start
            ]
            self.placed_samples += last - first


class _Aec3:
    """WebRTC's audio processing with AEC3 (LiveKit's build), on 10 ms int16 blocks."""

    def __init__(self) -> None:
        # Imported here, not at the top: LiveKit's native runtime starts threads on import,
        # which a process that cancels no echo (or only prints --help) should not pay for.
        from livekit import rtc

        self._frame = rtc.AudioFrame
        self._apm = rtc.AudioProcessingModule(echo_cancellation=True, high_pass_filter=True)

    def process(self, near: np.ndarray, far: np.ndarray) -> np.ndarray:
        out = np.empty_like(near)
        for start in range(0, len(near), _BLOCK):
            block = slice(start, start + _BLOCK)
            self._apm.process_reverse_stream(self._frame(far[block].tobytes(), _RATE, 1, _BLOCK))
            frame = self._frame(near[block].tobytes(), _RATE, 1, _BLOCK)
            self._apm.process_stream(frame)
            out[block] = np.frombuffer(frame.data, dtype=np.int16)
        return out


class EchoCancellationStage:
    """16 kHz int16 in, the same number of samples out, one 10 ms block later, with the echo
    of ``reference`` removed. ``input_energy`` and ``output_energy`` add up the squares of
    what came in and went out (echo return loss enhancement, for benchmarks)."""

    name = ECHO_CANCELLATION_STAGE

    def __init__(self, reference: FarEndReference | None = None) -> None:
        self.reference = reference if reference is not None else FarEndReference()
        self._canceller = _Aec3()
        self._pending = np.zeros(0, dtype=np.int16)
        self._ready = np.zeros(_BLOCK, dtype=np.int16)
        self.input_energy = 0.0
        self.output_energy = 0.0

    def process(self, pcm16k: np.ndarray) -> np.ndarray:
        pcm = np.asarray(pcm16k, dtype=np.int16)
        self.reference.heard(len(pcm))
        pending = np.concatenate([self._pending, pcm])
        whole = len(pending) - len(pending) % _BLOCK
        if whole:
            near = pending[:whole]
            far = self.reference.take(whole)
            cleaned = self._canceller.process(near, far)
            self.input_energy += float(np.sum(near.astype(np.float64) ** 2))
            self.output_energy += float(np.sum(cleaned.astype(np.float64) ** 2))
        else:
            cleaned = np.zeros(0, dtype=np.int16)
        self._pending = pending[whole:]
        ready = np.concatenate([self._ready, cleaned])
        out, self._ready = ready[: len(pcm)], ready[len(pcm) :]
        return out


def echo_cancellation_stage(
    config: EchoCancellation | None, clock: Callable[[], float] = time.monotonic
) -> EchoCancellationStage | None:
    """The stage a session's ``x_echo_cancellation`` asks for (None: off)."""
    if config is None:
        return None
    return EchoCancellationStage(FarEndReference(clock))
