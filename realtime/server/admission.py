"""How many sessions the service holds, in all, per API key and per client address, over
WebSocket and WebRTC together; and the list of live sessions that a drain walks.

A slot is taken before the WebSocket is accepted or the WebRTC offer answered, and given back
when the session ends (for an offer that never connects, when the call gives up on it).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from realtime.session.session import Session

# How long a refused client is told to wait: sessions last minutes, but one ends every few
# seconds on a busy service.
RETRY_AFTER_S = 5


@dataclass(frozen=True)
class AdmissionLimits:
    max_sessions: int | None = 100
    """Over WebSocket and WebRTC together; None: no limit."""
    max_sessions_per_key: int | None = None
    max_sessions_per_address: int | None = None
    """Per client IP address (after a trusted proxy's X-Forwarded-For), so that one host
    cannot take every slot; None: no limit."""


@dataclass(frozen=True)
class Full:
    """No slot: ``status`` 503 (the service is full) or 429 (this key's limit)."""

    status: int
    code: str
    message: str


@dataclass(eq=False)
class Slot:
    """One admitted session's place; ``release`` (idempotent) gives it back."""

    admission: LiveSessions
    key_id: str | None
    address: str | None = None
    session: Session | None = None
    released: bool = field(default=False)

    def attach(self, session: Session) -> None:
        self.session = session

    def release(self) -> None:
        if not self.released:
            self.released = True
            self.admission._release(self)


class LiveSessions:
    def __init__(self, limits: AdmissionLimits) -> None:
        self.limits = limits
        self._slots: set[Slot] = set()
        self._per_key: Counter[str] = Counter()
        self._per_address: Counter[str] = Counter()
        self._released = asyncio.Event()

    def __len__(self) -> int:
        return len(self._slots)

    def sessions(self) -> list[Session]:
        return [slot.session for slot in self._slots if slot.session is not None]

    def admit(self, key_id: str | None, address: str | None = None) -> Slot | Full:
        """``address``: the client's, where its sessions are to be counted (None: not)."""
        limits = self.limits
        if limits.max_sessions is not None and len(self._slots) >= limits.max_sessions:
            return Full(
                503,
                "server_at_capacity",
                f"the service holds its maximum of {limits.max_sessions} sessions; "
                f"retry in {RETRY_AFTER_S} s",
            )
        per_key = limits.max_sessions_per_key
        if key_id is not None and per_key is not None and self._per_key[key_id] >= per_key:
            return Full(
                429,
                "session_limit_reached",
                f"this API key holds its maximum of {per_key} concurrent sessions",
            )
        per_address = limits.max_sessions_per_address
        if (
            address is not None
            and per_address is not None
            and self._per_address[address] >= per_address
        ):
            return Full(
                429,
                "address_limit_reached",
                f"this client address holds its maximum of {per_address} concurrent sessions",
            )
        slot = Slot(self, key_id, address)
        self._slots.add(slot)
        if key_id is not None:
            self._per_key[key_id] += 1
        if address is not None:
            self._per_address[address] += 1
        return slot

    async def wait_release(self, timeout_s: float) -> None:
        """Until a slot is given back, or ``timeout_s``."""
        self._released.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._released.wait()

    def _release(self, slot: Slot) -> None:
        self._released.set()
        self._slots.discard(slot)
        for counter, name in ((self._per_key, slot.key_id), (self._per_address, slot.address)):
            if name is not None:
                counter[name] -= 1
                if counter[name] <= 0:
                    del counter[name]
