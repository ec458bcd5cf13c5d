"""Where a session's unexpected exceptions end up: one place logs them with the session's id
and traceback, counts them, tells the client (a ``server_error`` event), and decides whether
the session can go on.

An exception from a client event's handler leaves the session running: the event is lost,
nothing else is. A dead loop the session cannot live without (sending, the VAD) ends it
with close code 1011, so no socket stays open on a session that no longer listens or speaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from realtime import events as ev
from realtime.telemetry.metrics import ServiceMetrics

log = logging.getLogger(__name__)

INTERNAL_ERROR_CLOSE_CODE = 1011


class Supervisor:
    def __init__(
        self,
        session_id: str,
        metrics: ServiceMetrics,
        send_event: Callable[[ev.ServerEvent], None],
        end_session: Callable[[int, str], object],
    ) -> None:
        self.session_id = session_id
        self._metrics = metrics
        self._send_event = send_event
        self._end_session = end_session

    def failed(self, exc: BaseException, where: str, *, event_id: str | None = None) -> None:
        """``exc`` escaped ``where``: log, count and report it; the session goes on."""
        log.error("session %s: unexpected error in %s", self.session_id, where, exc_info=exc)
        self._metrics.internal_errors_total.labels(where=where).inc()
        self._metrics.errors_total.labels(code="server_error").inc()
        message = (
            f"The server had an error while {where}; the session goes on "
            f"(reference: {self.session_id})."
        )
        self._send_event(ev.ErrorReported.server("server_error", message, event_id=event_id))

    def watch(self, task: asyncio.Task[Any], where: str, *, vital: bool) -> None:
        """Report ``task``'s exception if it dies of one; a ``vital`` task's death ends the
        session."""

        def done(finished: asyncio.Task[Any]) -> None:
            if finished.cancelled() or finished.exception() is None:
                return
            exc = finished.exception()
            assert exc is not None
            self.failed(exc, where)
            if vital:
                self._metrics.sessions_ended_total.labels(reason="internal_error").inc()
                self._end_session(INTERNAL_ERROR_CLOSE_CODE, f"{where} failed")

        task.add_done_callback(done)
