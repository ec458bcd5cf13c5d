"""Server events of the OpenAI Realtime API (GA), built as plain dicts ready for JSON.

Shapes follow the ``openai`` package's ``openai.types.realtime`` models (the tests validate
against them). Events this service adds (reasoning text, turn timings) are prefixed so that
other clients can ignore them.
"""

from __future__ import annotations

import secrets
from typing import Any, Literal

from realtime.protocol.errors import ProtocolError

Event = dict[str, Any]
ResponseStatus = Literal["in_progress", "completed", "cancelled", "failed", "incomplete"]

REASONING_DELTA = "response.reasoning.delta"
REASONING_DONE = "response.reasoning.done"


def new_id(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(10)}"


def _event(event_type: str, **fields: Any) -> Event:
    return {"type": event_type, "event_id": new_id("event"), **fields}


def error(err: ProtocolError) -> Event:
    return _event(
        "error",
        error={
            "type": err.type,
            "code": err.code,
            "message": err.message,
            "param": err.param,
            "event_id": err.event_id,
        },
    )


def server_error(code: str, message: str, *, event_id: str | None = None) -> Event:
    return error(ProtocolError(code, message, None, event_id, type="server_error"))


def session_created(session: dict[str, Any]) -> Event:
    return _event("session.created", session=session)


def session_updated(session: dict[str, Any]) -> Event:
    return _event("session.updated", session=session)


def speech_started(audio_start_ms: int, item_id: str) -> Event:
    return _event(
        "input_audio_buffer.speech_started", audio_start_ms=audio_start_ms, item_id=item_id
    )


def speech_stopped(audio_end_ms: int, item_id: str) -> Event:
    return _event("input_audio_buffer.speech_stopped", audio_end_ms=audio_end_ms, item_id=item_id)


def timeout_triggered(audio_start_ms: int, audio_end_ms: int, item_id: str) -> Event:
    return _event(
        "input_audio_buffer.timeout_triggered",
        audio_start_ms=audio_start_ms,
        audio_end_ms=audio_end_ms,
        item_id=item_id,
    )


def committed(item_id: str, previous_item_id: str | None) -> Event:
    return _event(
        "input_audio_buffer.committed", item_id=item_id, previous_item_id=previous_item_id
    )


def cleared() -> Event:
    return _event("input_audio_buffer.cleared")


def message_item(
    item_id: str,
    role: Literal["user", "assistant", "system"],
    content: list[dict[str, Any]],
    status: Literal["completed", "incomplete", "in_progress"] = "completed",
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "role": role,
        "status": status,
        "content": content,
    }


def function_call_item(
    item_id: str,
    call_id: str,
    name: str,
    arguments: str,
    status: Literal["completed", "incomplete", "in_progress"] = "completed",
) -> dict[str, Any]:
    return {
        "id": item_id,
        "object": "realtime.item",
        "type": "function_call",
        "status": status,
        "call_id": call_id,
        "name": name,
        "arguments": arguments,
    }


def function_call_arguments_delta(
    response_id: str, item_id: str, output_index: int, call_id: str, delta: str
) -> Event:
    return _event(
        "response.function_call_arguments.delta",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        call_id=call_id,
        delta=delta,
    )


def function_call_arguments_done(
    response_id: str, item_id: str, output_index: int, call_id: str, name: str, arguments: str
) -> Event:
    return _event(
        "response.function_call_arguments.done",
        response_id=response_id,
        item_id=item_id,
        output_index=output_index,
        call_id=call_id,
        name=name,
        arguments=arguments,
    )


def item_added(item: dict[str, Any], previous_item_id: str | None) -> Event:
    return _event("conversation.item.added", item=item, previous_item_id=previous_item_id)


def item_done(item: dict[str, Any], previous_item_id: str | None) -> Event:
    return _event("conversation.item.done", item=item, previous_item_id=previous_item_id)


def item_retrieved(item: dict[str, Any]) -> Event:
    return _event("conversation.item.retrieved", item=item)


def item_deleted(item_id: str) -> Event:
    return _event("conversation.item.deleted", item_id=item_id)


def item_truncated(item_id: str, content_index: int, audio_end_ms: int) -> Event:
    return _event(
        "conversation.item.truncated",
        item_id=item_id,
        content_index=content_index,
        audio_end_ms=audio_end_ms,
    )


def transcription_delta(item_id: str, delta: str) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.delta",
        item_id=item_id,
        content_index=0,
        delta=delta,
    )


def transcription_failed(item_id: str, message: str) -> Event:
    error = {"type": "transcription_error", "code": "transcription_failed",
             "message": message, "param": None}  # fmt: skip
    return _event(
        "conversation.item.input_audio_transcription.failed",
        item_id=item_id,
        content_index=0,
        error=error,
    )


def transcription_completed(item_id: str, transcript: str, audio_seconds: float) -> Event:
    return _event(
        "conversation.item.input_audio_transcription.completed",
        item_id=item_id,
        content_index=0,
        transcript=transcript,
        usage={"type": "duration", "seconds": round(audio_seconds, 3)},
    )


def response_object(
    response_id: str,
    status: ResponseStatus,
    *,
    output_modalities: list[str],
    output: list[dict[str, Any]] | None = None,
    status_details: dict[str, Any] | None = None,
    usage: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    output_format: dict[str, Any] | None = None,
    voice: str | None = None,
    extensions: dict[str, Any] | None = None,
    conversation_id: str | None = None,
    max_output_tokens: int | None = None,
) -> dict[str, Any]:
    """``conversation_id``: None for an out-of-band response; ``max_output_tokens``: None
    for no limit ("inf")."""
    body: dict[str, Any] = {
        "id": response_id,
        "object": "realtime.response",
        "status": status,
        "status_details": status_details,
        "output": output or [],
        "conversation_id": conversation_id,
        "output_modalities": output_modalities,
        "max_output_tokens": "inf" if max_output_tokens is None else max_output_tokens,
        "audio": {"output": {"format": output_format, "voice": voice}},
        "usage": usage,
        "metadata": metadata,
    }
    if extensions:
        body.update(extensions)
    return body


def response_created(response: dict[str, Any]) -> Event:
    return _event("response.created", response=response)


def response_done(response: dict[str, Any]) -> Event:
    return _event("response.done", response=response)


def output_item_added(response_id: str, item: dict[str, Any], output_index: int = 0) -> Event:
    return _event(
        "response.output_item.added", response_id=response_id, output_index=output_index, item=item
    )


def output_item_done(response_id: str, item: dict[str, Any], output_index: int = 0) -> Event:
    return _event(
        "response.output_item.done", response_id=response_id, output_index=output_index, item=item
    )


def content_part_added(response_id: str, item_id: str, part: dict[str, Any]) -> Event:
    return _event(
        "response.content_part.added",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        part=part,
    )


def content_part_done(response_id: str, item_id: str, part: dict[str, Any]) -> Event:
    return _event(
        "response.content_part.done",
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        part=part,
    )


def _content_event(event_type: str, response_id: str, item_id: str, **fields: Any) -> Event:
    return _event(
        event_type,
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        **fields,
    )


def audio_delta(response_id: str, item_id: str, delta_b64: str) -> Event:
    return _content_event("response.output_audio.delta", response_id, item_id, delta=delta_b64)


def audio_done(response_id: str, item_id: str) -> Event:
    return _content_event("response.output_audio.done", response_id, item_id)


def audio_transcript_delta(response_id: str, item_id: str, delta: str) -> Event:
    return _content_event(
        "response.output_audio_transcript.delta", response_id, item_id, delta=delta
    )


def audio_transcript_done(response_id: str, item_id: str, transcript: str) -> Event:
    return _content_event(
        "response.output_audio_transcript.done", response_id, item_id, transcript=transcript
    )


def text_delta(response_id: str, item_id: str, delta: str) -> Event:
    return _content_event("response.output_text.delta", response_id, item_id, delta=delta)


def text_done(response_id: str, item_id: str, text: str) -> Event:
    return _content_event("response.output_text.done", response_id, item_id, text=text)


def reasoning_delta(response_id: str, item_id: str, delta: str) -> Event:
    return _content_event(REASONING_DELTA, response_id, item_id, delta=delta)


def reasoning_done(response_id: str, item_id: str, text: str) -> Event:
    return _content_event(REASONING_DONE, response_id, item_id, text=text)
