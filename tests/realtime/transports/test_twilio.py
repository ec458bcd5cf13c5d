"""The Twilio Media Streams transport's messages, without a server: parsing what Twilio sends
and what the sink sends back for each kind of session output."""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from realtime import events as ev
from realtime.protocol.session_config import PcmuFormat, SessionConfig
from realtime.session.outbox import AudioFrame, EventMessage
from realtime.transports.twilio import (
    MARK_EVERY_MS,
    TwilioProtocolError,
    TwilioSink,
    media_payload,
    parse_message,
    parse_start,
    phone_config,
)
from tokenizer.g711 import ulaw_decode


def ended(response_id: str, status: ev.ReplyStatus) -> ev.ReplyEnded:
    reply = ev.Reply(response_id, status, True, PcmuFormat(), None, "conv_1", None)
    return ev.ReplyEnded(reply)


class FakeWebSocket:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send_text(self, text: str) -> None:
        self.sent.append(json.loads(text))


def start_message(**media_format: object) -> dict[str, Any]:
    return {
        "event": "start",
        "streamSid": "MZ1",
        "start": {"streamSid": "MZ1", "callSid": "CA1", "customParameters": {"lang": "en"},
                  "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, **media_format}},
    }  # fmt: skip


def test_start_gives_the_stream_and_refuses_other_media_formats() -> None:
    start = parse_start(start_message())
    assert (start.stream_sid, start.call_sid, start.custom_parameters) == (
        "MZ1",
        "CA1",
        {"lang": "en"},
    )
    with pytest.raises(TwilioProtocolError, match="unsupported media format"):
        parse_start(start_message(sampleRate=16000))
    with pytest.raises(TwilioProtocolError):
        parse_start({"event": "start"})


@pytest.mark.parametrize(
    "raw", ["not json", "[1, 2]", '{"no": "event"}', b"\xff{", "[" * 5000 + "]" * 5000]
)
def test_messages_that_are_not_media_streams_messages_are_refused(raw: str) -> None:
    with pytest.raises(TwilioProtocolError):
        parse_message(raw)


def test_media_payload_must_be_base64() -> None:
    assert media_payload({"event": "media", "media": {"payload": "AAEC"}}) == b"\x00\x01\x02"
    with pytest.raises(TwilioProtocolError, match="base64"):
        media_payload({"event": "media", "media": {"payload": "@@@"}})
    with pytest.raises(TwilioProtocolError):
        media_payload({"event": "media"})


def test_a_phone_session_is_mu_law_both_ways_and_keeps_the_rest() -> None:
    base = SessionConfig(instructions="be brief")
    config = phone_config(base, echo_cancellation=False)
    assert config.audio.input.format == config.audio.output.format == PcmuFormat()
    assert config.instructions == "be brief" and config.input_rate == 8000
    assert base.input_rate == 24000, "the server's default is not changed"


async def test_the_sink_sends_media_a_mark_after_the_reply_and_clear_only_for_a_heard_cut() -> None:
    ws = FakeWebSocket()
    sink = TwilioSink(ws, "MZ1")  # type: ignore[arg-type]
    tone = np.round(8000 * np.sin(np.arange(160) / 5)).astype(np.int16)
    await sink.deliver(EventMessage(ev.SessionCreated(SessionConfig())))
    await sink.deliver(AudioFrame("resp_1", "item_1", tone, 0))
    await sink.deliver(EventMessage(ev.AudioDone("resp_1", "item_1"), "resp_1"))
    await sink.deliver(EventMessage(ended("resp_1", "completed")))
    await sink.deliver(AudioFrame("resp_2", "item_2", tone, 0))
    await sink.deliver(EventMessage(ended("resp_2", "cancelled")))
    await sink.deliver(EventMessage(ended("resp_3", "cancelled")))
    kinds = [m["event"] for m in ws.sent]
    # Nothing for OpenAI events; no clear for a reply the caller never heard (resp_3).
    assert kinds == ["media", "mark", "media", "clear"]
    assert all(m["streamSid"] == "MZ1" for m in ws.sent)
    decoded = ulaw_decode(base64.b64decode(ws.sent[0]["media"]["payload"]))
    assert np.max(np.abs(decoded.astype(int) - tone)) <= 256
    end_mark = ws.sent[1]["mark"]["name"]
    assert end_mark.startswith("resp_1.") and end_mark.endswith(".end")
    sink.mark_played(end_mark)
    sink.mark_played("someone-elses-mark")
    assert sink.played_marks == 1 and not sink.pending_marks


async def test_marks_along_a_reply_report_how_much_of_it_the_caller_heard() -> None:
    ws = FakeWebSocket()
    played: list[tuple[str, float]] = []
    sink = TwilioSink(ws, "MZ1", on_played=lambda rid, ms: played.append((rid, ms)))  # type: ignore[arg-type]
    frame = np.zeros(160, np.int16)  # 20 ms at 8 kHz
    frames = int(2.5 * MARK_EVERY_MS / 20)
    for _ in range(frames):
        await sink.deliver(AudioFrame("resp_1", "item_1", frame, 0))
    await sink.deliver(EventMessage(ev.AudioDone("resp_1", "item_1"), "resp_1"))
    marks = [m["mark"]["name"] for m in ws.sent if m["event"] == "mark"]
    assert len(marks) == 3 and len(set(marks)) == 3, "two along the reply, one at its end"
    for name in marks:
        sink.mark_played(name)
    assert played == [
        ("resp_1", MARK_EVERY_MS),
        ("resp_1", 2 * MARK_EVERY_MS),
        ("resp_1", frames * 20.0),
    ]
