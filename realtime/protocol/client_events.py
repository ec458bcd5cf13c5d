"""Client events of the OpenAI Realtime API (GA), validated strictly.

``parse_client_event`` turns one raw WebSocket/data-channel message into a typed event or
raises ``ProtocolError`` with a message that says exactly what is wrong.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, TypeAdapter, ValidationError

from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import FunctionTool, ReasoningEffort, ToolChoiceSetting


class _Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: str | None = None


class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: dict[str, Any]


class InputAudioBufferAppend(_Event):
    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioBufferCommit(_Event):
    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(_Event):
    type: Literal["input_audio_buffer.clear"]


class ContentPart(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["input_text", "input_audio", "output_text", "text", "output_audio"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None


class MessageItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    type: Literal["message"] = "message"
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    object: Literal["realtime.item"] | None = None
    role: Literal["user", "system", "assistant"]
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    content: Annotated[list[ContentPart], Field(min_length=1, max_length=16)]


class FunctionCallItem(BaseModel):
    """A function call added by the client (e.g. replayed history)."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function_call"]
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    call_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    name: Annotated[str, Field(min_length=1, max_length=64)]
    arguments: str = ""


class FunctionCallOutputItem(BaseModel):
    """The result of a function call the model made, sent back by the client."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["function_call_output"]
    id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    object: Literal["realtime.item"] | None = None
    status: Literal["completed", "incomplete", "in_progress"] | None = None
    call_id: Annotated[str, Field(min_length=1, max_length=64)]
    output: str


def _item_type(value: Any) -> str:
    kind = value.get("type", "message") if isinstance(value, dict) else getattr(value, "type", "")
    return kind if isinstance(kind, str) else ""


Item = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")],
    Discriminator(_item_type),
]


class ItemReference(BaseModel):
    """An existing conversation item, by id, in a response's ``input``."""

    model_config = ConfigDict(extra="forbid")

    type: Literal["item_reference"]
    id: str


InputItem = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[ItemReference, Tag("item_reference")],
    Discriminator(_item_type),
]


class ConversationItemCreate(_Event):
    type: Literal["conversation.item.create"]
    previous_item_id: str | None = None
    item: Item


class ConversationItemDelete(_Event):
    type: Literal["conversation.item.delete"]
    item_id: str


class ConversationItemRetrieve(_Event):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ConversationItemTruncate(_Event):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: Annotated[int, Field(ge=0)] = 0
    audio_end_ms: Annotated[int, Field(ge=0)]


class ReasoningParam(BaseModel):
    model_config = ConfigDict(extra="forbid")

    effort: ReasoningEffort | None = None


class ResponseParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    conversation: Literal["auto", "none"] | None = None
    """``none``: an out-of-band response, kept out of the conversation."""
    input: Annotated[list[InputItem], Field(max_length=256)] | None = None
    """The response's own context instead of the conversation ([] for none)."""
    instructions: str | None = None
    output_modalities: list[Literal["audio", "text"]] | None = None
    max_output_tokens: Annotated[int, Field(ge=1, le=32_768)] | Literal["inf"] | None = None
    metadata: dict[str, str] | None = None
    reasoning: ReasoningParam | None = None
    audio: dict[str, Any] | None = None
    tool_choice: ToolChoiceSetting | None = None
    tools: Annotated[list[FunctionTool], Field(max_length=128)] | None = None
    parallel_tool_calls: bool | None = None


class ResponseCreate(_Event):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_Event):
    type: Literal["response.cancel"]
    response_id: str | None = None


class OutputAudioBufferClear(_Event):
    type: Literal["output_audio_buffer.clear"]


ClientEvent = Annotated[
    SessionUpdate
    | InputAudioBufferAppend
    | InputAudioBufferCommit
    | InputAudioBufferClear
    | ConversationItemCreate
    | ConversationItemDelete
    | ConversationItemRetrieve
    | ConversationItemTruncate
    | ResponseCreate
    | ResponseCancel
    | OutputAudioBufferClear,
    Field(discriminator="type"),
]

CLIENT_EVENT_TYPES = frozenset(
    str(model.model_fields["type"].annotation.__args__[0])  # type: ignore[union-attr]
    for model in (
        SessionUpdate,
        InputAudioBufferAppend,
        InputAudioBufferCommit,
        InputAudioBufferClear,
        ConversationItemCreate,
        ConversationItemDelete,
        ConversationItemRetrieve,
        ConversationItemTruncate,
        ResponseCreate,
        ResponseCancel,
        OutputAudioBufferClear,
    )
)

_ADAPTER: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)


# The largest client event a service accepts unless configured otherwise.
DEFAULT_MAX_EVENT_BYTES = 8 * 1024 * 1024


def parse_client_event(raw: str | bytes, max_bytes: int) -> ClientEvent:
    """Validate one raw message. Raises ``ProtocolError`` (never anything else)."""
    if len(raw) > max_bytes:
        raise ProtocolError(
            "message_too_large",
            f"event of {len(raw)} bytes exceeds the limit of {max_bytes} bytes; "
            "send audio in smaller input_audio_buffer.append events",
        )
    try:
        # orjson, not json: its nesting limit (1024) is fixed, where json's depends on how
        # deep the Python stack already is, so the same event would pass or fail by chance.
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ProtocolError("invalid_json", f"event is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ProtocolError("invalid_event", "event must be a JSON object")
    event_id = data.get("event_id") if isinstance(data.get("event_id"), str) else None
    event_type = data.get("type")
    if not isinstance(event_type, str):
        raise ProtocolError(
            "missing_required_parameter", "event has no string 'type'", "type", event_id
        )
    if event_type not in CLIENT_EVENT_TYPES:
        raise ProtocolError(
            "invalid_event_type",
            f"Unknown event type '{event_type}'. "
            f"Supported: {', '.join(sorted(CLIENT_EVENT_TYPES))}",
            "type",
            event_id,
        )
    try:
        return _ADAPTER.validate_python(data)
    except RecursionError:
        raise ProtocolError("invalid_event", "event is nested too deeply", None, event_id) from None
    except ValidationError as exc:
        error = ProtocolError.from_validation(exc, prefix="", event_id=event_id)
        # Pydantic puts the discriminator value first in the location: drop it.
        if error.param and error.param.startswith(event_type + "."):
            param = error.param[len(event_type) + 1 :]
            error.message = error.message.replace(error.param, param)
            error.param = param
        raise error from None
