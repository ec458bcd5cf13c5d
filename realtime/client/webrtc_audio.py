"""Reply audio received over WebRTC, turned back into ``response.output_audio.delta`` events.

Over WebRTC the reply is one continuous audio track (silence between replies) and the data
channel says when each response's audio starts and ends playing
(``output_audio_buffer.started`` / ``.stopped`` / ``.cleared``). ``ReplyAudioDemux`` cuts
the decoded track into per-response ``OutputAudioDelta`` events, so that code written for
the WebSocket SDK (``collect_response``, ``speak_turn``) works unchanged:

- a response's audio begins at the first non-silent frame decoded after its ``started``
  event (the server sends exact digital silence between replies);
- it ends at the first silent frame decoded after its ``stopped`` event, or at once on
  ``cleared``;
- the samples are resampled from the track's 48 kHz to the response's output rate.

The response's ``response.done`` is held back until its audio has ended (bounded by a
grace period), so a consumer that stops at ``response.done`` has all of its audio.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from realtime.client.events import (
    DEFAULT_AUDIO_RATE,
    OutputAudioDelta,
    ResponseCreated,
    ResponseDone,
    ServerEvent,
)
from tokenizer.pcm import pcm16_to_base64
from tokenizer.resample import StreamResampler

# A decoded frame whose samples all stay within this is silence (Opus decodes digital
# silence to exact zeros; allow for a little codec noise).
SILENCE_PEAK = 8
# Longest a response.done waits for the end of its audio.
DONE_GRACE_S = 1.0


@dataclass
class _Response:
    id: str
    rate: int
    item_id: str | None = None
    announced: bool = False
    playing: bool = False
    stopping: bool = False
    ended: bool = False
    held_done: ResponseDone | None = None
    resampler: StreamResampler | None = None
    # When its first sound was decoded: the first delta carries this time, although the
    # resampler's delay may hold its samples back until the next frame.
    first_sound_at: float | None = None
    emitted: bool = False
    release_timer: asyncio.TimerHandle | None = field(default=None, repr=False)


class ReplyAudioDemux:
    """Feeds ``emit`` the server events plus synthesized audio deltas, in arrival order."""

    def __init__(
        self,
        emit: Callable[[ServerEvent], None],
        *,
        track_rate: int = 48_000,
        default_rate: int = DEFAULT_AUDIO_RATE,
        done_grace_s: float = DONE_GRACE_S,
    ) -> None:
        self._emit = emit
        self._track_rate = track_rate
        self.default_rate = default_rate
        self._done_grace_s = done_grace_s
        self._responses: dict[str, _Response] = {}
        self._waiting: deque[_Response] = deque()
        self._current: _Response | None = None

    # -- data channel ----------------------------------------------------------------------

    def on_event(self, event: ServerEvent) -> None:
        """A server event from the data channel."""
        kind = event.type
        response_id = event.raw.get("response_id")
        if isinstance(event, ResponseCreated) and event.response.id:
            rate = event.response.output_rate or self.default_rate
            self._responses[event.response.id] = _Response(event.response.id, rate)
        elif kind == "response.output_item.added":
            response = self._responses.get(str(response_id))
            item = event.raw.get("item") or {}
            if (
                response is not None
                and item.get("type") == "message"  # what is heard, not a function call
                and isinstance(item.get("id"), str)
            ):
                response.item_id = item["id"]
        elif kind == "output_audio_buffer.started" and isinstance(response_id, str):
            response = self._response(response_id)
            response.announced = True
            self._waiting.append(response)
        elif kind == "output_audio_buffer.stopped" and isinstance(response_id, str):
            self._response(response_id).stopping = True
        elif kind == "output_audio_buffer.cleared" and isinstance(response_id, str):
            self._end(self._response(response_id))
        elif isinstance(event, ResponseDone) and event.response.id:
            response = self._responses.get(event.response.id)
            if response is not None and response.announced and not response.ended:
                response.held_done = event
                loop = asyncio.get_running_loop()
                response.release_timer = loop.call_later(self._done_grace_s, self._end, response)
                return
            self._responses.pop(event.response.id, None)
        self._emit(event)

    # -- media -----------------------------------------------------------------------------

    def on_audio(self, pcm: npt.NDArray[np.int16], received_at: float) -> None:
        """One decoded frame of the reply track (mono int16 at the track rate)."""
        silent = len(pcm) == 0 or int(np.abs(pcm.astype(np.int32)).max()) <= SILENCE_PEAK
        response = self._current
        if response is None:
            if silent or not self._waiting:
                return
            response = self._current = self._waiting.popleft()
            response.playing = True
            response.first_sound_at = received_at
            response.resampler = StreamResampler(self._track_rate, response.rate)
        elif response.stopping and silent:
            self._end(response)
            return
        assert response.resampler is not None
        self._emit_audio(response, response.resampler.process(pcm), received_at)

    # -- internals -------------------------------------------------------------------------

    def _response(self, response_id: str) -> _Response:
        response = self._responses.get(response_id)
        if response is None:
            response = self._responses[response_id] = _Response(response_id, self.default_rate)
        return response

    def _emit_audio(
        self, response: _Response, pcm: npt.NDArray[np.int16], received_at: float
    ) -> None:
        if len(pcm) == 0:
            return
        event = OutputAudioDelta(
            response_id=response.id, item_id=response.item_id, delta=pcm16_to_base64(pcm)
        )
        if not response.emitted and response.first_sound_at is not None:
            received_at = response.first_sound_at
        response.emitted = True
        event.received_at = received_at
        self._emit(event)

    def _end(self, response: _Response) -> None:
        if response.ended:
            return
        response.ended = True
        if response.release_timer is not None:
            response.release_timer.cancel()
        if response in self._waiting:
            self._waiting.remove(response)
        if self._current is response:
            self._current = None
            if response.resampler is not None:
                tail = response.resampler.flush()
                self._emit_audio(response, tail.astype(np.int16, copy=False), time.monotonic())
        if response.held_done is not None:
            done, response.held_done = response.held_done, None
            self._responses.pop(response.id, None)
            self._emit(done)
