"""Graceful drain on SIGTERM/SIGINT, so a rolling update loses no reply.

At once: ``/healthz`` answers 503 ``draining`` (load balancers stop routing here) and new
sessions are refused (503, ``Retry-After``). Sessions that are not replying end now; those
speaking a reply end when it has been sent, or at ``timeout_s``. Each gets an ``error`` event
(``server_shutting_down``) and a close (WebSocket 1001, a WebRTC hang-up). Then the server
stops and the process exits 0. A second SIGINT stops at once.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Awaitable, Callable
from types import FrameType

import uvicorn

from realtime.protocol.errors import ProtocolError
from realtime.server.gate import Gate
from realtime.session.session import Session

log = logging.getLogger(__name__)

GOING_AWAY = 1001
_POLL_S = 0.05
_CLOSE_WAIT_S = 3.0


def shutting_down_error() -> ProtocolError:
    return ProtocolError(
        "server_shutting_down",
        "The server is shutting down; connect again to continue on another replica.",
        type="server_error",
    )


async def drain_sessions(gate: Gate, timeout_s: float) -> None:
    gate.draining = True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    log.warning("draining: %d sessions, waiting up to %g s for replies", len(gate.live), timeout_s)
    while len(gate.live) and loop.time() < deadline:
        for session in gate.live.sessions():
            if not session.replying:
                _end(session)
        await gate.live.wait_release(_POLL_S)  # or a reply may have ended meanwhile
    for session in gate.live.sessions():
        _end(session)
    close_deadline = loop.time() + _CLOSE_WAIT_S
    while len(gate.live) and loop.time() < close_deadline:
        await gate.live.wait_release(close_deadline - loop.time())
    log.warning("drained (%d sessions left to the server's shutdown)", len(gate.live))


def _end(session: Session) -> None:
    if session.end(GOING_AWAY, "server shutting down", shutting_down_error()):
        session.metrics.sessions_ended_total.labels(reason="shutting_down").inc()


class DrainingServer(uvicorn.Server):
    """uvicorn's server, with a drain between the first stop signal and the stop."""

    def __init__(self, config: uvicorn.Config, drain: Callable[[], Awaitable[None] | None]) -> None:
        """``drain()`` returns the drain to run, or None when there is nothing to drain yet
        (the service has not started)."""
        super().__init__(config)
        self._drain = drain
        self._loop: asyncio.AbstractEventLoop | None = None
        self._draining: asyncio.Task[None] | None = None

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        await super().serve(sockets)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if self._draining is not None or self._loop is None:
            if sig == signal.SIGINT or self._loop is None:
                super().handle_exit(sig, frame)
            return
        log.warning("received %s: draining", signal.Signals(sig).name)
        self._loop.call_soon_threadsafe(self._start_drain)

    def _start_drain(self) -> None:
        if self._draining is None:
            self._draining = asyncio.ensure_future(self._drain_then_stop())

    async def _drain_then_stop(self) -> None:
        try:
            drain = self._drain()
            if drain is not None:
                await drain
        except Exception:
            log.exception("drain failed; stopping now")
        finally:
            self.should_exit = True
