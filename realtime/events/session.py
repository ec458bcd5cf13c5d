"""What a session says about itself, its input audio, its conversation and errors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from realtime.events.items import Item


class SessionDescription(Protocol):
    """The session's configuration as the protocol layer holds it (``SessionConfig``)."""

    def wire(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SessionCreated:
    session: SessionDescription


@dataclass(frozen=True)
class SessionUpdated:
    session: SessionDescription


@dataclass(frozen=True)
class ErrorReported:
    """Something the client should know went wrong; the session goes on."""

    code: str
    message: str
    param: str | None = None
    event_id: str | None = None
    """The client event it answers, if any."""
    type: str = "invalid_request_error"
    """``invalid_request_error`` (the client's mistake) or ``server_error`` (ours)."""

    @classmethod
    def server(cls, code: str, message: str, *, event_id: str | None = None) -> ErrorReported:
        return cls(code, message, None, event_id, type="server_error")


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int
    item_id: str


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True)
class IdleTimedOut:
    audio_start_ms: int
    audio_end_ms: int
    item_id: str


@dataclass(frozen=True)
class BufferCommitted:
    item_id: str
    previous_item_id: str | None


@dataclass(frozen=True)
class BufferCleared:
    pass


@dataclass(frozen=True)
class ItemAdded:
    item: Item
    previous_item_id: str | None


@dataclass(frozen=True)
class ItemDone:
    item: Item
    previous_item_id: str | None


@dataclass(frozen=True)
class ItemRetrieved:
    item: Item


@dataclass(frozen=True)
class ItemDeleted:
    item_id: str


@dataclass(frozen=True)
class ItemTruncated:
    item_id: str
    content_index: int
    audio_end_ms: int


@dataclass(frozen=True)
class TranscriptionDelta:
    item_id: str
    delta: str


@dataclass(frozen=True)
class TranscriptionCompleted:
    item_id: str
    transcript: str
    audio_seconds: float


@dataclass(frozen=True)
class TranscriptionFailed:
    item_id: str
    message: str
