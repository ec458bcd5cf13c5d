"""What a session says about a reply: that it started, what it writes and speaks, the calls
it makes, and how it ended."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from realtime.events.items import ContentPart, Item

ReplyStatus = Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]


class AudioFormatDescription(Protocol):
    """The reply audio's format as the protocol layer holds it (``AudioFormat``)."""

    @property
    def rate(self) -> int: ...

    def model_dump(self, *, mode: str = ...) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Usage:
    input_tokens: int
    output_tokens: int
    cached_tokens: int


@dataclass(frozen=True)
class TurnReport:
    """Which engine and policy made the reply, and its turn's timings (``x_turn``)."""

    engine: str
    model: str
    simulated: bool
    policy: str
    timings: Mapping[str, Any]


@dataclass(frozen=True)
class StatusDetails:
    type: ReplyStatus
    reason: str | None = None
    error_code: str | None = None
    """Set when the server cut the reply short because of an error of its own."""


@dataclass(frozen=True)
class Reply:
    id: str
    status: ReplyStatus
    speaks: bool
    output_format: AudioFormatDescription
    voice: str | None
    conversation_id: str | None
    """None for an out-of-band reply."""
    max_output_tokens: int | None
    """None: no limit."""
    metadata: Mapping[str, str] | None = None
    output: tuple[Item, ...] = ()
    status_details: StatusDetails | None = None
    usage: Usage | None = None
    turn: TurnReport | None = None
    """Set once the reply has ended."""


@dataclass(frozen=True)
class ReplyCreated:
    reply: Reply


@dataclass(frozen=True)
class ReplyEnded:
    """Completed, or cut (``reply.status`` cancelled): after this, nothing more of it."""

    reply: Reply


@dataclass(frozen=True)
class OutputItemAdded:
    response_id: str
    item: Item
    output_index: int = 0


@dataclass(frozen=True)
class OutputItemDone:
    response_id: str
    item: Item
    output_index: int = 0


@dataclass(frozen=True)
class ContentPartAdded:
    response_id: str
    item_id: str
    part: ContentPart


@dataclass(frozen=True)
class ContentPartDone:
    response_id: str
    item_id: str
    part: ContentPart


@dataclass(frozen=True)
class TextDelta:
    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True)
class TextDone:
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True)
class AudioTranscriptDelta:
    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True)
class AudioTranscriptDone:
    response_id: str
    item_id: str
    transcript: str


@dataclass(frozen=True)
class AudioDelta:
    """A frame of reply audio where a wire carries it as an event (base64 in its format)."""

    response_id: str
    item_id: str
    audio: str


@dataclass(frozen=True)
class AudioDone:
    """The reply's last audio frame has been queued before this."""

    response_id: str
    item_id: str


@dataclass(frozen=True)
class ReasoningDelta:
    response_id: str
    item_id: str
    delta: str


@dataclass(frozen=True)
class ReasoningDone:
    response_id: str
    item_id: str
    text: str


@dataclass(frozen=True)
class FunctionCallArgumentsDelta:
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    delta: str


@dataclass(frozen=True)
class FunctionCallArgumentsDone:
    response_id: str
    item_id: str
    output_index: int
    call_id: str
    name: str
    arguments: str


@dataclass(frozen=True)
class PlaybackStarted:
    """The far end started playing the reply's audio (a WebRTC track)."""

    response_id: str


@dataclass(frozen=True)
class PlaybackStopped:
    response_id: str


@dataclass(frozen=True)
class PlaybackCleared:
    """The reply was cut while it played: the rest of its audio is dropped."""

    response_id: str
