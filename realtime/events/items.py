"""Conversation items as the session's events describe them: messages with their content
parts, function calls and their outputs. Plain data; a wire renderer gives them a shape."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ItemStatus = Literal["completed", "incomplete", "in_progress"]
Role = Literal["user", "assistant", "system"]
PartType = Literal["input_text", "input_audio", "output_text", "output_audio", "text"]


@dataclass(frozen=True)
class Phase:
    """A stretch of a reply: ``commentary``, said before the reasoning was over, or the
    ``final_answer``, said with all of it in view."""

    phase: Literal["commentary", "final_answer"]
    text: str


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
    phases: tuple[Phase, ...] = ()
    """An assistant reply's text, cut into its phases (none while it is in progress)."""


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


def reply_message(
    item_id: str, *, speaks: bool, text: str, status: ItemStatus, commentary_words: int = 0
) -> Message:
    """An assistant reply: its transcript if it speaks, its text if it writes; its first
    ``commentary_words`` words were commentary."""
    part = (
        ContentPart("output_audio", transcript=text)
        if speaks
        else ContentPart("output_text", text=text)
    )
    return Message(item_id, "assistant", (part,), status, reply_phases(text, commentary_words))


def reply_phases(text: str, commentary_words: int) -> tuple[Phase, ...]:
    """``text`` (words separated by single spaces) as its commentary and its final answer."""
    words = text.split()
    commentary, final = words[:commentary_words], words[commentary_words:]
    phases = []
    if commentary:
        phases.append(Phase("commentary", " ".join(commentary)))
    if final:
        phases.append(Phase("final_answer", " ".join(final)))
    return tuple(phases)
