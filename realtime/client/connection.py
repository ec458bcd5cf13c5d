"""``RealtimeConnection``: what a turn needs from a Realtime session, whatever carries it."""

from __future__ import annotations

import asyncio
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from realtime.client.events import ServerEvent

DEFAULT_URL = "ws://127.0.0.1:8080/v1/realtime"  # `step-realtime serve`'s own default
DEFAULT_OPEN_TIMEOUT_S = 10.0
DEFAULT_CHUNK_MS = 20.0  # audio per input_audio_buffer.append, as a microphone sends it


class RealtimeConnection(Protocol):
    """One open Realtime session: a single queue of typed server events plus a microphone.

    ``RealtimeClient`` (WebSocket) is one; a WebRTC client that turns its received audio
    track into ``OutputAudioDelta`` events is another. ``speak_turn`` and
    ``collect_response`` take any of them.
    """

    url: str

    @property
    def input_rate(self) -> int:
        """The sample rate ``stream_audio`` sends at."""
        ...

    @property
    def output_rate(self) -> int:
        """The sample rate of the reply audio in ``OutputAudioDelta`` events."""
        ...

    async def next_event(self, timeout: float | None = None) -> ServerEvent:  # noqa: ASYNC109
        """The next server event; ``TimeoutError`` after ``timeout`` seconds and
        ``RealtimeConnectionClosed`` once the session has ended."""
        ...

    async def send(self, event: dict[str, Any]) -> None:
        """Send one client event."""
        ...

    async def stream_audio(
        self,
        pcm: npt.NDArray[np.int16],
        *,
        sample_rate: int,
        chunk_ms: float = DEFAULT_CHUNK_MS,
        realtime: bool = True,
        stop: asyncio.Event | None = None,
    ) -> float:
        """Send ``pcm`` as a microphone would; returns the ``time.monotonic()`` at which its
        last piece left (see ``RealtimeClient.stream_audio``)."""
        ...

    def describe_recent(self) -> str:
        """The last event types received, for error messages."""
        ...

    async def close(self) -> None:
        """End the session (safe to call more than once)."""
        ...
