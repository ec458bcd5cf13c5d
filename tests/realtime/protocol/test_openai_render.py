"""Every typed event renders as a GA server event that the ``openai`` package's own models
accept (the reasoning extension events aside), in the shape the service has always sent."""

from __future__ import annotations

import typing

from realtime import events as ev
from realtime.protocol.errors import ProtocolError
from realtime.protocol.openai_render import render
from realtime.protocol.session_config import PcmFormat, PcmuFormat, SessionConfig
from realtime.telemetry.timings import TurnTimings
from tests.support.openai_events import EXTENSION_EVENTS, validate_server_event

RID, ITEM = "resp_1", "item_1"
SPOKEN = ev.reply_message(
    ITEM, speaks=True, text="Let me see. Hello.", status="completed", commentary_words=3
)
CALL = ev.FunctionCall("item_2", "call_1", "get_weather", '{"city": "Paris"}')


def reply(status: ev.ReplyStatus, **extra: typing.Any) -> ev.Reply:
    return ev.Reply(RID, status, True, PcmFormat(), "alloy", "conv_1", 512, **extra)


def ended_turn() -> ev.TurnReport:
    timings = TurnTimings()
    timings.mark("speech_stopped", 1.0)
    timings.mark("response_done", 1.5)
    return ev.TurnReport("echo", "pocketsphinx", False, "after-think", timings.report())


CLIENT_ERROR = ProtocolError("invalid_value", "bad", "session.x", "evt_1").event()
COMMITTED_TURN = ev.ItemAdded(ev.Message(ITEM, "user", (ev.ContentPart("input_audio"),)), "item_0")
RETRIEVED_TURN = ev.ItemRetrieved(
    ev.Message(ITEM, "user", (ev.ContentPart("input_audio", transcript="hi", audio="AAA="),))
)
TRANSCRIBED = ev.TranscriptionCompleted(ITEM, "hello", 1.23456)
CREATED = ev.ReplyCreated(reply("in_progress", metadata={"topic": "weather"}))
COMPLETED = ev.ReplyEnded(
    reply("completed", output=(SPOKEN, CALL), usage=ev.Usage(40, 3, 32), turn=ended_turn())
)
CUT = ev.ReplyEnded(
    reply(
        "cancelled",
        status_details=ev.StatusDetails("cancelled", "turn_detected", "internal_error"),
        turn=ended_turn(),
    )
)
AUDIO_PART = ev.ContentPartAdded(RID, ITEM, ev.ContentPart("output_audio", transcript=""))
TEXT_PART = ev.ContentPartDone(RID, ITEM, ev.ContentPart("output_text", text="Hello."))
SERVER_ERROR = ev.ErrorReported.server("engine_error", "the engine failed")

EXAMPLES: list[ev.ServerEvent] = [
    ev.SessionCreated(SessionConfig()),
    ev.SessionUpdated(SessionConfig.model_validate({"type": "transcription"})),
    CLIENT_ERROR,
    SERVER_ERROR,
    ev.SpeechStarted(120, ITEM),
    ev.SpeechStopped(980, ITEM),
    ev.IdleTimedOut(0, 6000, ITEM),
    ev.BufferCommitted(ITEM, None),
    ev.BufferCleared(),
    COMMITTED_TURN,
    ev.ItemDone(ev.Message(ITEM, "user", (ev.ContentPart("input_text", text="hi"),)), None),
    RETRIEVED_TURN,
    ev.ItemRetrieved(CALL),
    ev.ItemRetrieved(ev.FunctionCallOutput("item_3", "call_1", "sunny")),
    ev.ItemDeleted(ITEM),
    ev.ItemTruncated(ITEM, 0, 1500),
    ev.TranscriptionDelta(ITEM, "hel"),
    TRANSCRIBED,
    ev.TranscriptionFailed(ITEM, "no speech"),
    CREATED,
    COMPLETED,
    CUT,
    ev.OutputItemAdded(RID, ev.reply_message(ITEM, speaks=False, text="", status="in_progress")),
    ev.OutputItemDone(RID, CALL, 1),
    AUDIO_PART,
    TEXT_PART,
    ev.TextDelta(RID, ITEM, "Hel"),
    ev.TextDone(RID, ITEM, "Hello."),
    ev.AudioTranscriptDelta(RID, ITEM, "Hel"),
    ev.AudioTranscriptDone(RID, ITEM, "Hello."),
    ev.AudioDelta(RID, ITEM, "AAA="),
    ev.AudioDone(RID, ITEM),
    ev.ReasoningDelta(RID, ITEM, "The user"),
    ev.ReasoningDone(RID, ITEM, "The user greets me."),
    ev.FunctionCallArgumentsDelta(RID, "item_2", 1, "call_1", '{"city"'),
    ev.FunctionCallArgumentsDone(RID, "item_2", 1, "call_1", "get_weather", "{}"),
    ev.PlaybackStarted(RID),
    ev.PlaybackStopped(RID),
    ev.PlaybackCleared(RID),
]


def test_the_examples_cover_every_event_type() -> None:
    assert {type(event) for event in EXAMPLES} == set(typing.get_args(ev.ServerEvent))


def test_every_event_renders_as_a_valid_ga_server_event() -> None:
    for event in EXAMPLES:
        rendered = render(event)
        assert rendered["event_id"].startswith("event_")
        if rendered["type"] in EXTENSION_EVENTS:
            assert rendered["type"].startswith("response.reasoning.")
        else:
            validate_server_event(rendered)


def test_each_rendering_gets_its_own_event_id() -> None:
    event = ev.BufferCleared()
    assert render(event)["event_id"] != render(event)["event_id"]


def test_a_reply_renders_as_the_realtime_response_object() -> None:
    done = render(COMPLETED)
    response = done["response"]
    assert done["type"] == "response.done"
    assert response["status"] == "completed" and response["status_details"] is None
    assert response["output_modalities"] == ["audio"]
    assert response["audio"] == {
        "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "alloy"}
    }
    assert response["usage"] == {
        "total_tokens": 43, "input_tokens": 40, "output_tokens": 3,
        "input_token_details": {"cached_tokens": 32}, "output_token_details": {"text_tokens": 3},
    }  # fmt: skip
    assert [item["type"] for item in response["output"]] == ["message", "function_call"]
    spoken = response["output"][0]
    assert spoken["content"] == [{"type": "output_audio", "transcript": "Let me see. Hello."}]
    assert spoken["x_phases"] == [
        {"phase": "commentary", "text": "Let me see."},
        {"phase": "final_answer", "text": "Hello."},
    ]
    assert response["x_turn"]["policy"] == "after-think"
    assert "stages_ms" in response["x_turn"]["timings"]
    assert "x_turn" not in render(CREATED)["response"]


def test_a_cut_reply_says_why_and_which_server_error_cut_it() -> None:
    response = render(CUT)["response"]
    assert response["status_details"] == {
        "type": "cancelled",
        "reason": "turn_detected",
        "error": {"type": "server_error", "code": "internal_error"},
    }


def test_an_unlimited_out_of_band_text_reply() -> None:
    out_of_band = ev.Reply(RID, "in_progress", False, PcmuFormat(), None, None, None)
    response = render(ev.ReplyCreated(out_of_band))["response"]
    assert response["max_output_tokens"] == "inf" and response["conversation_id"] is None
    assert response["output_modalities"] == ["text"]
    assert response["audio"]["output"]["format"] == {"type": "audio/pcmu"}


def test_content_parts_and_items_keep_their_wire_names() -> None:
    added = render(AUDIO_PART)
    assert added["part"] == {"type": "audio", "transcript": ""}
    assert (added["output_index"], added["content_index"]) == (0, 0)
    assert render(TEXT_PART)["part"] == {"type": "text", "text": "Hello."}
    committed = render(COMMITTED_TURN)["item"]
    assert committed["content"] == [{"type": "input_audio", "transcript": None}]
    assert committed["object"] == "realtime.item" and committed["status"] == "completed"
    retrieved = render(RETRIEVED_TURN)["item"]["content"]
    assert retrieved == [{"type": "input_audio", "audio": "AAA=", "transcript": "hi"}]
    usage = render(TRANSCRIBED)["usage"]
    assert usage == {"type": "duration", "seconds": 1.235}


def test_the_error_event_carries_the_client_event_it_answers() -> None:
    error = render(CLIENT_ERROR)["error"]
    assert error == {"type": "invalid_request_error", "code": "invalid_value",
                     "message": "bad", "param": "session.x", "event_id": "evt_1"}  # fmt: skip
    assert render(SERVER_ERROR)["error"]["type"] == "server_error"


def test_a_reply_in_progress_has_no_phases_and_a_cut_one_keeps_what_was_said() -> None:
    opened = ev.reply_message(ITEM, speaks=True, text="", status="in_progress")
    assert "x_phases" not in render(ev.OutputItemAdded(RID, opened))["item"]
    cut = ev.reply_message(ITEM, speaks=True, text="Let me", status="incomplete",
                           commentary_words=3)  # fmt: skip
    assert cut.phases == (ev.Phase("commentary", "Let me"),)
