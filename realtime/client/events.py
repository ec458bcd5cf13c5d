"""Typed views of the server events the SDK receives (OpenAI Realtime GA plus our extensions).

Every model allows unknown fields, so a newer server never breaks an older client. Event
types the SDK has no model for, and known types whose payload does not fit their model,
parse as a plain ``ServerEvent`` that still carries ``type`` and the raw dict.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from tokenizer.pcm import pcm16_from_base64

log = logging.getLogger(__name__)

DEFAULT_AUDIO_RATE = 24_000


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ServerEvent(_Open):
    """Any server event. ``received_at`` is ``time.monotonic()`` when the client received it."""

    type: str
    event_id: str | None = None
    received_at: float = Field(default=0.0, exclude=True)
    raw: dict[str, Any] = Field(default_factory=dict, exclude=True, repr=False)


# -- session --------------------------------------------------------------------------------


def session_audio_rate(session: Mapping[str, Any], direction: Literal["input", "output"]) -> int:
    """The PCM sample rate of a session object's input or output audio (24 kHz when absent)."""
    audio = session.get("audio")
    side = audio.get(direction) if isinstance(audio, Mapping) else None
    audio_format = side.get("format") if isinstance(side, Mapping) else None
    rate = audio_format.get("rate") if isinstance(audio_format, Mapping) else None
    return int(rate) if isinstance(rate, int | float) and rate > 0 else DEFAULT_AUDIO_RATE


class _SessionEvent(ServerEvent):
    session: dict[str, Any]

    @property
    def input_rate(self) -> int:
        return session_audio_rate(self.session, "input")

    @property
    def output_rate(self) -> int:
        return session_audio_rate(self.session, "output")


class SessionCreated(_SessionEvent):
    type: Literal["session.created"] = "session.created"


class SessionUpdated(_SessionEvent):
    type: Literal["session.updated"] = "session.updated"


# -- errors ---------------------------------------------------------------------------------


class ErrorDetail(_Open):
    message: str = ""
    type: str = "server_error"
    code: str | None = None
    param: str | None = None
    event_id: str | None = None

    def describe(self) -> str:
        """One line: the message plus code and parameter where the server gave them."""
        extras = [f"code={self.code}"] if self.code else []
        if self.param:
            extras.append(f"param={self.param}")
        suffix = f" ({', '.join(extras)})" if extras else ""
        return f"{self.type}: {self.message or '(no message)'}{suffix}"


class ErrorEvent(ServerEvent):
    type: Literal["error"] = "error"
    error: ErrorDetail


# -- input audio buffer ---------------------------------------------------------------------


class SpeechStarted(ServerEvent):
    type: Literal["input_audio_buffer.speech_started"] = "input_audio_buffer.speech_started"
    audio_start_ms: int = 0
    item_id: str | None = None


class SpeechStopped(ServerEvent):
    type: Literal["input_audio_buffer.speech_stopped"] = "input_audio_buffer.speech_stopped"
    audio_end_ms: int = 0
    item_id: str | None = None


class InputAudioCommitted(ServerEvent):
    type: Literal["input_audio_buffer.committed"] = "input_audio_buffer.committed"
    item_id: str | None = None
    previous_item_id: str | None = None


class InputAudioCleared(ServerEvent):
    type: Literal["input_audio_buffer.cleared"] = "input_audio_buffer.cleared"


# -- conversation ---------------------------------------------------------------------------


class ConversationItemAdded(ServerEvent):
    type: Literal["conversation.item.added"] = "conversation.item.added"
    item: dict[str, Any]
    previous_item_id: str | None = None


class ConversationItemDone(ServerEvent):
    type: Literal["conversation.item.done"] = "conversation.item.done"
    item: dict[str, Any]
    previous_item_id: str | None = None


class InputTranscriptionCompleted(ServerEvent):
    type: Literal["conversation.item.input_audio_transcription.completed"] = (
        "conversation.item.input_audio_transcription.completed"
    )
    item_id: str | None = None
    content_index: int = 0
    transcript: str


# -- responses ------------------------------------------------------------------------------


class XTurnTimings(_Open):
    """Server-side stage times of one turn, in ms from ``origin`` (usually ``speech_stopped``)."""

    origin: str = "speech_stopped"
    stages_ms: dict[str, float] = Field(default_factory=dict)
    silence_window_ms: float | None = None
    speech_end_audio_ms: float | None = None
    engine_retries: int = 0


class XTurn(_Open):
    """This service's ``response["x_turn"]`` extension: which engine answered and how fast."""

    engine: str | None = None
    model: str | None = None
    simulated: bool = False
    policy: str | None = None
    timings: XTurnTimings | None = None


class ResponseInfo(_Open):
    """The ``response`` object of response.created / response.done."""

    id: str | None = None
    status: str = "in_progress"
    status_details: dict[str, Any] | None = None
    output: list[dict[str, Any]] = Field(default_factory=list)
    output_modalities: list[str] | None = None
    audio: dict[str, Any] | None = None
    usage: dict[str, Any] | None = None
    metadata: dict[str, str] | None = None
    x_turn: XTurn | None = None

    @property
    def output_rate(self) -> int | None:
        """The reply audio's sample rate if the response states it."""
        if not self.audio:
            return None
        return session_audio_rate({"audio": self.audio}, "output")


class ResponseCreated(ServerEvent):
    type: Literal["response.created"] = "response.created"
    response: ResponseInfo


class ResponseDone(ServerEvent):
    type: Literal["response.done"] = "response.done"
    response: ResponseInfo

    @property
    def status(self) -> str:
        return self.response.status

    @property
    def x_turn(self) -> XTurn | None:
        return self.response.x_turn


class _ContentEvent(ServerEvent):
    response_id: str | None = None
    item_id: str | None = None
    output_index: int = 0
    content_index: int = 0


class OutputAudioDelta(_ContentEvent):
    type: Literal["response.output_audio.delta"] = "response.output_audio.delta"
    delta: str

    def pcm(self) -> npt.NDArray[np.int16]:
        """The delta's samples (PCM16 at the session's output rate)."""
        return pcm16_from_base64(self.delta)


class OutputAudioDone(_ContentEvent):
    type: Literal["response.output_audio.done"] = "response.output_audio.done"


class OutputAudioTranscriptDelta(_ContentEvent):
    type: Literal["response.output_audio_transcript.delta"] = (
        "response.output_audio_transcript.delta"
    )
    delta: str


class OutputAudioTranscriptDone(_ContentEvent):
    type: Literal["response.output_audio_transcript.done"] = "response.output_audio_transcript.done"
    transcript: str = ""


class OutputTextDelta(_ContentEvent):
    type: Literal["response.output_text.delta"] = "response.output_text.delta"
    delta: str


class OutputTextDone(_ContentEvent):
    type: Literal["response.output_text.done"] = "response.output_text.done"
    text: str = ""


class ReasoningDelta(_ContentEvent):
    """Extension: a piece of the model's reasoning text."""

    type: Literal["response.reasoning.delta"] = "response.reasoning.delta"
    delta: str


class ReasoningDone(_ContentEvent):
    """Extension: the complete reasoning text of a response."""

    type: Literal["response.reasoning.done"] = "response.reasoning.done"
    text: str = ""


_TYPED_EVENTS: tuple[type[ServerEvent], ...] = (
    SessionCreated,
    SessionUpdated,
    ErrorEvent,
    SpeechStarted,
    SpeechStopped,
    InputAudioCommitted,
    InputAudioCleared,
    ConversationItemAdded,
    ConversationItemDone,
    InputTranscriptionCompleted,
    ResponseCreated,
    ResponseDone,
    OutputAudioDelta,
    OutputAudioDone,
    OutputAudioTranscriptDelta,
    OutputAudioTranscriptDone,
    OutputTextDelta,
    OutputTextDone,
    ReasoningDelta,
    ReasoningDone,
)

EVENT_MODELS: Mapping[str, type[ServerEvent]] = MappingProxyType(
    {model.model_fields["type"].default: model for model in _TYPED_EVENTS}
)


_SDK_FIELDS = frozenset({"received_at", "raw"})


def parse_server_event(data: dict[str, Any], received_at: float) -> ServerEvent:
    """Parse one decoded server message into its typed event (or a generic ``ServerEvent``).

    Raises ``ValueError`` only when ``data`` is not an object with a string ``type``.
    """
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise ValueError("a server event must be a JSON object with a string 'type'")
    # The SDK's own fields are set below, never taken from the wire.
    payload = {key: value for key, value in data.items() if key not in _SDK_FIELDS}
    model = EVENT_MODELS.get(data["type"], ServerEvent)
    try:
        event = model.model_validate(payload)
    except ValidationError as exc:
        log.warning("server event %r does not match its schema (%s)", data["type"], exc)
        try:
            event = ServerEvent.model_validate(payload)
        except ValidationError:
            event = ServerEvent(type=data["type"])
    event.received_at = received_at
    event.raw = data
    return event
