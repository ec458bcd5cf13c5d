"""ConversationLog on its own: no server, no engine, events caught by a recording outbox."""

from __future__ import annotations

from typing import Any, cast

import numpy as np
import pytest

from realtime import events as ev
from realtime.conversation import AssistantItem, UserAudioItem, UserTextItem
from realtime.engines.base import InputTranscription
from realtime.protocol import client_events as ce
from realtime.protocol.errors import ProtocolError
from realtime.protocol.openai_render import render
from realtime.protocol.session_config import PcmFormat
from realtime.session.conversation_log import ConversationLog
from realtime.session.outbox import Outbox


class RecordingOutbox:
    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def send_now(self, event: ev.ServerEvent, response_id: str | None = None) -> None:
        self.events.append(render(event))

    def types(self) -> list[str]:
        return [event["type"] for event in self.events]


def make_log(max_bytes: int | None = None) -> tuple[ConversationLog, RecordingOutbox]:
    outbox = RecordingOutbox()
    return ConversationLog(cast(Outbox, outbox), max_bytes=max_bytes), outbox


def user_text(item_id: str, text: str = "hello") -> ce.ConversationItemCreate:
    return ce.ConversationItemCreate.model_validate(
        {
            "type": "conversation.item.create",
            "item": {
                "id": item_id,
                "type": "message",
                "role": "user",
                "content": [{"type": "input_text", "text": text}],
            },
        }
    )


def test_create_adds_the_item_and_tells_the_client() -> None:
    log, outbox = make_log()
    log.create(user_text("a"), PcmFormat())
    log.create(user_text("b"), PcmFormat())
    assert [item.id for item in log.items] == ["a", "b"]
    assert isinstance(log.items[0], UserTextItem)
    assert outbox.types() == ["conversation.item.added", "conversation.item.done"] * 2
    assert outbox.events[-1]["previous_item_id"] == "a"


def test_create_refuses_an_existing_id_and_an_insert() -> None:
    log, _ = make_log()
    log.create(user_text("a"), PcmFormat())
    with pytest.raises(ProtocolError) as exists:
        log.create(user_text("a"), PcmFormat())
    assert exists.value.code == "item_already_exists"
    inserted = user_text("b")
    inserted.previous_item_id = "nowhere"
    with pytest.raises(ProtocolError) as insert:
        log.create(inserted, PcmFormat())
    assert insert.value.param == "previous_item_id"
    assert [item.id for item in log.items] == ["a"]


def test_delete_removes_the_item_but_not_the_active_reply() -> None:
    log, outbox = make_log()
    log.create(user_text("a"), PcmFormat())
    log.create(user_text("b"), PcmFormat())
    with pytest.raises(ProtocolError):
        log.delete("b", "evt", protected_id="b")
    with pytest.raises(ProtocolError) as missing:
        log.delete("c", "evt", protected_id=None)
    assert missing.value.code == "item_not_found"
    log.delete("a", "evt", protected_id="b")
    assert [item.id for item in log.items] == ["b"]
    assert outbox.events[-1]["type"] == "conversation.item.deleted"
    assert outbox.events[-1]["item_id"] == "a"


def test_truncate_keeps_the_share_of_words_that_was_heard() -> None:
    log, outbox = make_log()
    reply = AssistantItem("r", text="one two three four", status="completed")
    log.append_reply(reply)
    truncate = ce.ConversationItemTruncate(
        type="conversation.item.truncate", item_id="r", content_index=0, audio_end_ms=500
    )
    log.truncate(truncate, sent_audio_ms=1000)
    assert reply.text == "one two"
    assert reply.status == "incomplete"
    assert outbox.events[-1]["type"] == "conversation.item.truncated"
    assert outbox.events[-1]["audio_end_ms"] == 500


def test_a_transcription_is_ignored_for_an_assistant_item() -> None:
    log, outbox = make_log()
    log.append_reply(AssistantItem("r", text="hi", status="completed"))
    log.add_transcription(InputTranscription("r", "not for an assistant item"))
    assert outbox.events == []


def test_old_items_are_dropped_past_max_bytes_keeping_the_last_two() -> None:
    # room is made before a new item is added: the two before it stay, and it joins them
    log, outbox = make_log(max_bytes=1)
    for item_id in ("a", "b", "c", "d"):
        log.create(user_text(item_id, "some words here"), PcmFormat())
    assert [item.id for item in log.items] == ["b", "c", "d"]
    deleted = [e["item_id"] for e in outbox.events if e["type"] == "conversation.item.deleted"]
    assert deleted == ["a"]


def test_engine_request_leaves_out_a_reply_in_progress() -> None:
    log, _ = make_log()
    log.create(user_text("a"), PcmFormat())
    log.append_reply(AssistantItem("r"))
    request = log.engine_request("be brief")
    assert [item.id for item in request.conversation.items] == ["a"]
    assert log.item_before("r") == "a"
    assert log.item_before("a") is None


def test_committed_user_audio_takes_its_first_transcription_only() -> None:
    log, outbox = make_log()
    log.commit_user_audio(UserAudioItem("u", chunks=[np.zeros(1600, dtype=np.int16)]))
    assert outbox.types() == [
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]
    log.add_transcription(InputTranscription("u", "first"))
    log.add_transcription(InputTranscription("u", "second"))
    item = log.items[0]
    assert isinstance(item, UserAudioItem) and item.transcript == "first"
    done = [e for e in outbox.events if e["type"].endswith("transcription.completed")]
    assert [e["transcript"] for e in done] == ["first"]
