"""Client JSON read at the transport's edge: each raw message of the WebSocket or the WebRTC
data channel becomes a typed client event, or the reason it is not one, before the session
sees it."""

from __future__ import annotations

from realtime.protocol import client_events as ce
from realtime.protocol.errors import ProtocolError
from realtime.session.session import Session


def read_client_event(session: Session, raw: str | bytes) -> ce.ClientEvent | ProtocolError:
    """``raw`` counted against the session's rate limits (before any parsing), then parsed."""
    try:
        session.admit_event(len(raw))
        return ce.parse_client_event(raw, session.max_event_bytes)
    except ProtocolError as err:
        return err


def hand_over(session: Session, raw: str | bytes) -> None:
    """One raw client message to the session; a bad one gets an ``error`` event, nothing
    else, and an unexpected exception is the supervisor's (reported; the session goes on)."""
    try:
        event = read_client_event(session, raw)
    except Exception as exc:
        session.supervisor.failed(exc, "reading a client event")
        return
    session.handle_event(event)
