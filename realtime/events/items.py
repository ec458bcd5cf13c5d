"""Conversation items as the session's events describe them: messages with their content
parts, function calls and their outputs. Plain data; a wire renderer gives them a shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ItemStatus = Literal["completed", "incomplete", "in_progress"]
Role = Literal["user", "assistant", "system"]
PartType = Literal["input_text", "input_audio", "output_text", "output_audio", "text"]


@dataclass(frozen=True)
class ContentPart:
    type: PartType
    text: str | None = None
    transcript: str | None = None
    audio: str | None = None
    """Base64 audio in the session's input format: only in a retrieved user turn."""


@dataclass(frozen=True)
class Message:
    id: str
    role: Role
    content: tuple[ContentPart, ...]
    status: ItemStatus = "completed"


@dataclass(frozen=True)
class FunctionCall:
    id: str
    call_id: str
    name: str
    arguments: str
    status: ItemStatus = "completed"


@dataclass(frozen=True)
class FunctionCallOutput:
    id: str
    call_id: str
    output: str


Item = Message | FunctionCall | FunctionCallOutput


def reply_message(item_id: str, *, speaks: bool, text: str, status: ItemStatus) -> Message:
    """An assistant reply: its transcript if it speaks, its text if it writes."""
    part = (
        ContentPart("output_audio", transcript=text)
        if speaks
        else ContentPart("output_text", text=text)
    )
    return Message(item_id, "assistant", (part,), status)
