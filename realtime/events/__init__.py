"""What a session says, as typed events free of any wire format: the session emits them,
its outbox carries them, and each transport renders them for its own wire
(``realtime.protocol.openai_render`` for the OpenAI Realtime JSON events)."""

from __future__ import annotations

from realtime.events.ids import new_id
from realtime.events.items import (
    ContentPart,
    FunctionCall,
    FunctionCallOutput,
    Item,
    ItemStatus,
    Message,
    Phase,
    reply_message,
    reply_phases,
)
from realtime.events.reply import (
    AudioDelta,
    AudioDone,
    AudioFormatDescription,
    AudioTranscriptDelta,
    AudioTranscriptDone,
    ContentPartAdded,
    ContentPartDone,
    FunctionCallArgumentsDelta,
    FunctionCallArgumentsDone,
    OutputItemAdded,
    OutputItemDone,
    PlaybackCleared,
    PlaybackStarted,
    PlaybackStopped,
    ReasoningDelta,
    ReasoningDone,
    Reply,
    ReplyCreated,
    ReplyEnded,
    ReplyStatus,
    StatusDetails,
    TextDelta,
    TextDone,
    TurnReport,
    Usage,
)
from realtime.events.session import (
    BufferCleared,
    BufferCommitted,
    ErrorReported,
    IdleTimedOut,
    ItemAdded,
    ItemDeleted,
    ItemDone,
    ItemRetrieved,
    ItemTruncated,
    SessionCreated,
    SessionDescription,
    SessionUpdated,
    SpeechStarted,
    SpeechStopped,
    TranscriptionCompleted,
    TranscriptionDelta,
    TranscriptionFailed,
)

ServerEvent = (
    SessionCreated
    | SessionUpdated
    | ErrorReported
    | SpeechStarted
    | SpeechStopped
    | IdleTimedOut
    | BufferCommitted
    | BufferCleared
    | ItemAdded
    | ItemDone
    | ItemRetrieved
    | ItemDeleted
    | ItemTruncated
    | TranscriptionDelta
    | TranscriptionCompleted
    | TranscriptionFailed
    | ReplyCreated
    | ReplyEnded
    | OutputItemAdded
    | OutputItemDone
    | ContentPartAdded
    | ContentPartDone
    | TextDelta
    | TextDone
    | AudioTranscriptDelta
    | AudioTranscriptDone
    | AudioDelta
    | AudioDone
    | ReasoningDelta
    | ReasoningDone
    | FunctionCallArgumentsDelta
    | FunctionCallArgumentsDone
    | PlaybackStarted
    | PlaybackStopped
    | PlaybackCleared
)
"""Everything a session (or its transport) says to the client."""

__all__ = [
    "AudioDelta", "AudioDone", "AudioFormatDescription", "AudioTranscriptDelta",
    "AudioTranscriptDone", "BufferCleared", "BufferCommitted", "ContentPart",
    "ContentPartAdded", "ContentPartDone", "ErrorReported", "FunctionCall",
    "FunctionCallArgumentsDelta", "FunctionCallArgumentsDone", "FunctionCallOutput",
    "IdleTimedOut", "Item", "ItemAdded", "ItemDeleted", "ItemDone", "ItemRetrieved",
    "ItemStatus", "ItemTruncated", "Message", "OutputItemAdded", "OutputItemDone",
    "Phase", "PlaybackCleared", "PlaybackStarted", "PlaybackStopped", "ReasoningDelta",
    "ReasoningDone", "Reply", "ReplyCreated", "ReplyEnded", "ReplyStatus", "ServerEvent",
    "SessionCreated", "SessionDescription", "SessionUpdated", "SpeechStarted",
    "SpeechStopped", "StatusDetails", "TextDelta", "TextDone", "TranscriptionCompleted",
    "TranscriptionDelta", "TranscriptionFailed", "TurnReport", "Usage", "new_id",
    "reply_message", "reply_phases",
]  # fmt: skip
