"""The session's typed events as OpenAI Realtime API (GA) server events: plain dicts ready
for JSON, the one place that knows their shapes.

Shapes follow the ``openai`` package's ``openai.types.realtime`` models (the tests validate
against them). Events this service adds (reasoning text, turn timings) are prefixed so that
other clients can ignore them.
"""

from __future__ import annotations

from typing import Any

from realtime import events as ev

Event = dict[str, Any]

REASONING_DELTA = "response.reasoning.delta"
REASONING_DONE = "response.reasoning.done"


def render(event: ev.ServerEvent) -> Event:
    """One event as the JSON object the WebSocket and the WebRTC data channel carry."""
    match event:
        case ev.SessionCreated(session=session):
            return _event("session.created", session=session.wire())
        case ev.SessionUpdated(session=session):
            return _event("session.updated", session=session.wire())
        case ev.ErrorReported():
            return _error(event)
        case ev.SpeechStarted(audio_start_ms=start, item_id=item_id):
            return _event(
                "input_audio_buffer.speech_started", audio_start_ms=start, item_id=item_id
            )
        case ev.SpeechStopped(audio_end_ms=end, item_id=item_id):
            return _event("input_audio_buffer.speech_stopped", audio_end_ms=end, item_id=item_id)
        case ev.IdleTimedOut(audio_start_ms=start, audio_end_ms=end, item_id=item_id):
            return _event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=start,
                audio_end_ms=end,
                item_id=item_id,
            )
        case ev.BufferCommitted(item_id=item_id, previous_item_id=previous):
            return _event(
                "input_audio_buffer.committed", item_id=item_id, previous_item_id=previous
            )
        case ev.BufferCleared():
            return _event("input_audio_buffer.cleared")
        case ev.ItemAdded(item=item, previous_item_id=previous):
            return _event("conversation.item.added", item=_item(item), previous_item_id=previous)
        case ev.ItemDone(item=item, previous_item_id=previous):
            return _event("conversation.item.done", item=_item(item), previous_item_id=previous)
        case ev.ItemRetrieved(item=item):
            return _event("conversation.item.retrieved", item=_item(item))
        case ev.ItemDeleted(item_id=item_id):
            return _event("conversation.item.deleted", item_id=item_id)
        case ev.ItemTruncated(item_id=item_id, content_index=index, audio_end_ms=end):
            return _event(
                "conversation.item.truncated",
                item_id=item_id,
                content_index=index,
                audio_end_ms=end,
            )
        case ev.TranscriptionDelta(item_id=item_id, delta=delta):
            return _event(
                "conversation.item.input_audio_transcription.delta",
                item_id=item_id,
                content_index=0,
                delta=delta,
            )
        case ev.TranscriptionCompleted(item_id=item_id, transcript=text, audio_seconds=seconds):
            return _event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=text,
                usage={"type": "duration", "seconds": round(seconds, 3)},
            )
        case ev.TranscriptionFailed(item_id=item_id, message=message):
            error = {"type": "transcription_error", "code": "transcription_failed",
                     "message": message, "param": None}  # fmt: skip
            return _event(
                "conversation.item.input_audio_transcription.failed",
                item_id=item_id,
                content_index=0,
                error=error,
            )
        case ev.ReplyCreated(reply=reply):
            return _event("response.created", response=_response(reply))
        case ev.ReplyEnded(reply=reply):
            return _event("response.done", response=_response(reply))
        case ev.OutputItemAdded(response_id=rid, item=item, output_index=index):
            return _event(
                "response.output_item.added", response_id=rid, output_index=index, item=_item(item)
            )
        case ev.OutputItemDone(response_id=rid, item=item, output_index=index):
            return _event(
                "response.output_item.done", response_id=rid, output_index=index, item=_item(item)
            )
        case ev.ContentPartAdded(response_id=rid, item_id=item_id, part=part):
            return _content("response.content_part.added", rid, item_id, part=_reply_part(part))
        case ev.ContentPartDone(response_id=rid, item_id=item_id, part=part):
            return _content("response.content_part.done", rid, item_id, part=_reply_part(part))
        case ev.TextDelta(response_id=rid, item_id=item_id, delta=delta):
            return _content("response.output_text.delta", rid, item_id, delta=delta)
        case ev.TextDone(response_id=rid, item_id=item_id, text=text):
            return _content("response.output_text.done", rid, item_id, text=text)
        case ev.AudioTranscriptDelta(response_id=rid, item_id=item_id, delta=delta):
            return _content("response.output_audio_transcript.delta", rid, item_id, delta=delta)
        case ev.AudioTranscriptDone(response_id=rid, item_id=item_id, transcript=text):
            return _content("response.output_audio_transcript.done", rid, item_id, transcript=text)
        case ev.AudioDelta(response_id=rid, item_id=item_id, audio=audio):
            return _content("response.output_audio.delta", rid, item_id, delta=audio)
        case ev.AudioDone(response_id=rid, item_id=item_id):
            return _content("response.output_audio.done", rid, item_id)
        case ev.ReasoningDelta(response_id=rid, item_id=item_id, delta=delta):
            return _content(REASONING_DELTA, rid, item_id, delta=delta)
        case ev.ReasoningDone(response_id=rid, item_id=item_id, text=text):
            return _content(REASONING_DONE, rid, item_id, text=text)
        case ev.FunctionCallArgumentsDelta():
            return _event(
                "response.function_call_arguments.delta",
                response_id=event.response_id,
                item_id=event.item_id,
                output_index=event.output_index,
                call_id=event.call_id,
                delta=event.delta,
            )
        case ev.FunctionCallArgumentsDone():
            return _event(
                "response.function_call_arguments.done",
                response_id=event.response_id,
                item_id=event.item_id,
                output_index=event.output_index,
                call_id=event.call_id,
                name=event.name,
                arguments=event.arguments,
            )
        case ev.PlaybackStarted(response_id=rid):
            return _event("output_audio_buffer.started", response_id=rid)
        case ev.PlaybackStopped(response_id=rid):
            return _event("output_audio_buffer.stopped", response_id=rid)
        case ev.PlaybackCleared(response_id=rid):
            return _event("output_audio_buffer.cleared", response_id=rid)
    raise TypeError(f"no OpenAI rendering for {type(event).__name__}")


def _event(event_type: str, **fields: Any) -> Event:
    return {"type": event_type, "event_id": ev.new_id("event"), **fields}


def _content(event_type: str, response_id: str, item_id: str, **fields: Any) -> Event:
    return _event(
        event_type,
        response_id=response_id,
        item_id=item_id,
        output_index=0,
        content_index=0,
        **fields,
    )


def _error(err: ev.ErrorReported) -> Event:
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


def _item(item: ev.Item) -> dict[str, Any]:
    match item:
        case ev.Message():
            body = {
                "id": item.id,
                "object": "realtime.item",
                "type": "message",
                "role": item.role,
                "status": item.status,
                "content": [_part(part) for part in item.content],
            }
            if item.phases:
                # OpenAI's output messages say their ``phase``; one reply item can hold both.
                body["x_phases"] = [
                    {"phase": phase.phase, "text": phase.text} for phase in item.phases
                ]
            return body
        case ev.FunctionCall():
            return {
                "id": item.id,
                "object": "realtime.item",
                "type": "function_call",
                "status": item.status,
                "call_id": item.call_id,
                "name": item.name,
                "arguments": item.arguments,
            }
        case ev.FunctionCallOutput():
            return {
                "id": item.id,
                "object": "realtime.item",
                "type": "function_call_output",
                "status": "completed",
                "call_id": item.call_id,
                "output": item.output,
            }


def _part(part: ev.ContentPart) -> dict[str, Any]:
    """An item's content part; an audio part always says its transcript (null if none)."""
    body: dict[str, Any] = {"type": part.type}
    if part.text is not None:
        body["text"] = part.text
    if part.audio is not None:
        body["audio"] = part.audio
    if part.transcript is not None or part.type in ("input_audio", "output_audio"):
        body["transcript"] = part.transcript
    return body


def _reply_part(part: ev.ContentPart) -> dict[str, Any]:
    """A reply's content part as ``response.content_part.*`` names it."""
    if part.type == "output_audio":
        return {"type": "audio", "transcript": part.transcript}
    return {"type": "text", "text": part.text}


def _response(reply: ev.Reply) -> dict[str, Any]:
    details = reply.status_details
    status_details: dict[str, Any] | None = None
    if details is not None:
        status_details = {"type": details.type, "reason": details.reason}
        if details.error_code is not None:
            status_details["error"] = {"type": "server_error", "code": details.error_code}
    usage = reply.usage
    body: dict[str, Any] = {
        "id": reply.id,
        "object": "realtime.response",
        "status": reply.status,
        "status_details": status_details,
        "output": [_item(item) for item in reply.output],
        "conversation_id": reply.conversation_id,
        "output_modalities": ["audio"] if reply.speaks else ["text"],
        "max_output_tokens": (
            "inf" if reply.max_output_tokens is None else reply.max_output_tokens
        ),
        "audio": {
            "output": {"format": reply.output_format.model_dump(mode="json"), "voice": reply.voice}
        },
        "usage": None
        if usage is None
        else {
            "total_tokens": usage.input_tokens + usage.output_tokens,
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "input_token_details": {"cached_tokens": usage.cached_tokens},
            "output_token_details": {"text_tokens": usage.output_tokens},
        },
        "metadata": None if reply.metadata is None else dict(reply.metadata),
    }
    turn = reply.turn
    if turn is not None:
        body["x_turn"] = {
            "engine": turn.engine,
            "model": turn.model,
            "simulated": turn.simulated,
            "policy": turn.policy,
            "timings": turn.timings,
        }
    return body
