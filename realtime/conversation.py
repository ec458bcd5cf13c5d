"""Conversation history as the engines see it: user audio or text, assistant replies, and the
function calls the assistant made with their results."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from tokenizer import ENGINE_SAMPLE_RATE


@dataclass
class UserAudioItem:
    """A user turn heard as audio.

    ``chunks`` are mono int16 at 16 kHz, each its own audio item for the engine (never over
    25 s). Listen-while-thinking closes chunks while the user is still speaking, so a turn
    in progress has ``complete=False`` and only the chunks closed so far.
    """

    id: str
    chunks: list[np.ndarray] = field(default_factory=list)
    transcript: str | None = None
    complete: bool = True

    @property
    def role(self) -> Literal["user"]:
        return "user"

    @property
    def duration_s(self) -> float:
        return sum(len(c) for c in self.chunks) / ENGINE_SAMPLE_RATE

    def audio(self) -> np.ndarray:
        if not self.chunks:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(self.chunks)


@dataclass
class UserTextItem:
    """A user turn typed as text (``conversation.item.create`` with ``input_text``)."""

    id: str
    text: str

    @property
    def role(self) -> Literal["user"]:
        return "user"


@dataclass
class SystemTextItem:
    """A system message added by the client (``conversation.item.create`` with role system)."""

    id: str
    text: str

    @property
    def role(self) -> Literal["system"]:
        return "system"


@dataclass
class AssistantItem:
    """The assistant's reply: the text that was spoken (cut to what was played on barge-in)."""

    id: str
    text: str = ""
    reasoning: str = ""
    status: Literal["in_progress", "completed", "incomplete"] = "in_progress"
    commentary_words: int = 0
    """How many of ``text``'s first words were said before the reasoning was over."""

    @property
    def role(self) -> Literal["assistant"]:
        return "assistant"


@dataclass
class FunctionCallItem:
    """A function call the assistant made (``arguments``: a JSON object, as the model wrote it)."""

    id: str
    call_id: str
    name: str
    arguments: str

    @property
    def role(self) -> Literal["assistant"]:
        return "assistant"


@dataclass
class FunctionCallOutputItem:
    """The client's result of a function call (``conversation.item.create``)."""

    id: str
    call_id: str
    output: str

    @property
    def role(self) -> Literal["tool"]:
        return "tool"


ConversationItem = (
    UserAudioItem
    | UserTextItem
    | SystemTextItem
    | AssistantItem
    | FunctionCallItem
    | FunctionCallOutputItem
)


@dataclass(frozen=True)
class Conversation:
    """An immutable snapshot handed to an engine: system instructions plus the items so far."""

    instructions: str
    items: tuple[ConversationItem, ...]

    def last_user_item(self) -> UserAudioItem | UserTextItem | None:
        for item in reversed(self.items):
            if isinstance(item, UserAudioItem | UserTextItem):
                return item
        return None
