"""A replica's circuit breaker: one failed request does not take a replica away from every
session; several in a short window do, and it comes back through a trial.

Closed: requests flow; each server-side failure is remembered for ``window_s``. ``failures``
of them within the window (or a failing ``/health``) open it: no new work. Once ``/health``
passes again it is half-open: requests flow, and the first one to finish decides: a success
closes it, a failure opens it again. Client-side errors (HTTP 4xx, a prompt the server
rejects) never count.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

BreakerState = Literal["closed", "open", "half_open"]


@dataclass(frozen=True)
class BreakerSettings:
    failures: int = 3
    window_s: float = 30.0


class CircuitBreaker:
    def __init__(
        self, settings: BreakerSettings, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.settings = settings
        self.state: BreakerState = "closed"
        self._clock = clock
        self._failures: deque[float] = deque()

    @property
    def allows_requests(self) -> bool:
        return self.state != "open"

    def failure(self) -> bool:
        """A server-side failure; True when it opened the breaker."""
        now = self._clock()
        if self.state == "half_open":
            self.state = "open"
            return True
        self._failures.append(now)
        while self._failures and self._failures[0] < now - self.settings.window_s:
            self._failures.popleft()
        if self.state == "closed" and len(self._failures) >= self.settings.failures:
            self.state = "open"
            return True
        return False

    def success(self) -> None:
        self._failures.clear()
        self.state = "closed"

    def health_failed(self) -> None:
        self.state = "open"

    def health_passed(self) -> None:
        """After an open spell, let a trial through."""
        if self.state == "open":
            self.state = "half_open"
            self._failures.clear()
