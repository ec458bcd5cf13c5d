"""Per-session limits on how fast a client may send: events, bytes, and audio faster than
real time. One client must not be able to take the CPU (VAD, decoding) that other sessions
need; a refused event gets an ``error`` event and is not applied, and what was accepted
before it stays."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from realtime.protocol.errors import ProtocolError


@dataclass(frozen=True)
class RateLimits:
    events_per_s: float = 200.0
    """Sustained client events per second (20 ms audio appends are 50 a second)."""
    event_burst: float = 1000.0
    bytes_per_s: float = 2 * 1024 * 1024
    byte_burst: float = 32 * 1024 * 1024
    audio_speed: float = 4.0
    """Sustained input audio, in seconds of audio per second: a client may send faster than
    real time (a file, a catch-up after a network stall), but not without bound."""
    audio_burst_s: float = 120.0


class TokenBucket:
    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = burst
        self._at = clock()

    def take(self, amount: float) -> bool:
        """Take ``amount`` if there is that much; otherwise take nothing."""
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
        self._at = now
        if amount > self._tokens:
            return False
        self._tokens -= amount
        return True


class SessionRateLimits:
    def __init__(
        self,
        limits: RateLimits,
        on_limited: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``on_limited(limit)`` is told of each refusal (for metrics)."""
        self.limits = limits
        self._on_limited = on_limited
        self._events = TokenBucket(limits.events_per_s, limits.event_burst, clock)
        self._bytes = TokenBucket(limits.bytes_per_s, limits.byte_burst, clock)
        self._audio = TokenBucket(limits.audio_speed, limits.audio_burst_s, clock)

    def admit_event(self, size: int) -> None:
        """Raises ``ProtocolError`` if the event must be refused."""
        if not self._events.take(1):
            self._refuse(
                "events",
                f"more than {self.limits.events_per_s:g} events a second; slow down",
            )
        if not self._bytes.take(size):
            self._refuse(
                "bytes",
                f"more than {self.limits.bytes_per_s / 1024 / 1024:g} MiB a second; slow down",
            )

    def admit_audio(self, seconds: float) -> None:
        if not self._audio.take(seconds):
            self._refuse(
                "audio_speed",
                f"input audio arrives faster than {self.limits.audio_speed:g}x real time for "
                "too long; this audio was not appended",
                "audio",
            )

    def _refuse(self, limit: str, message: str, param: str | None = None) -> None:
        self._on_limited(limit)
        raise ProtocolError("rate_limit_exceeded", message, param)
