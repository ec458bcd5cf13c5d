"""Every event the server builds parses into its typed model; anything else parses generically."""

from __future__ import annotations

import numpy as np
import pytest

from realtime import events as ev
from realtime.client import events as ce
from realtime.protocol.errors import ProtocolError
from realtime.protocol.openai_render import render
from realtime.protocol.session_config import PcmFormat, SessionConfig
from realtime.telemetry.timings import TurnTimings
from tokenizer.pcm import pcm16_to_base64

AT = 123.25


def reply(
    status: ev.ReplyStatus, *, speaks: bool = True, rate: int = 24_000, **extra: object
) -> ev.Reply:
    return ev.Reply("resp_1", status, speaks, PcmFormat(rate=rate), None, None, None, **extra)  # type: ignore[arg-type]


def test_every_event_the_server_builds_parses_into_its_typed_model() -> None:
    session = SessionConfig()
    item = ev.Message("item_1", "user", (ev.ContentPart("input_audio"),))
    expected: list[tuple[ev.ServerEvent, type[ce.ServerEvent]]] = [
        (ev.SessionCreated(session), ce.SessionCreated),
        (ev.SessionUpdated(session), ce.SessionUpdated),
        (ProtocolError("invalid_value", "bad", "session.x").event(), ce.ErrorEvent),
        (ev.SpeechStarted(120, "item_1"), ce.SpeechStarted),
        (ev.SpeechStopped(980, "item_1"), ce.SpeechStopped),
        (ev.BufferCommitted("item_1", None), ce.InputAudioCommitted),
        (ev.BufferCleared(), ce.InputAudioCleared),
        (ev.ItemAdded(item, None), ce.ConversationItemAdded),
        (ev.ItemDone(item, None), ce.ConversationItemDone),
        (ev.TranscriptionCompleted("item_1", "hello", 1.0), ce.InputTranscriptionCompleted),
        (ev.ReplyCreated(reply("in_progress")), ce.ResponseCreated),
        (ev.ReplyEnded(reply("in_progress")), ce.ResponseDone),
        (ev.AudioDelta("resp_1", "item_2", "AAA="), ce.OutputAudioDelta),
        (ev.AudioDone("resp_1", "item_2"), ce.OutputAudioDone),
        (ev.AudioTranscriptDelta("resp_1", "item_2", "Hi"), ce.OutputAudioTranscriptDelta),
        (ev.AudioTranscriptDone("resp_1", "item_2", "Hi"), ce.OutputAudioTranscriptDone),
        (ev.TextDelta("resp_1", "item_2", "Hi"), ce.OutputTextDelta),
        (ev.TextDone("resp_1", "item_2", "Hi"), ce.OutputTextDone),
        (ev.ReasoningDelta("resp_1", "item_2", "hmm"), ce.ReasoningDelta),
        (ev.ReasoningDone("resp_1", "item_2", "hmm"), ce.ReasoningDone),
    ]
    for typed, model in expected:
        data = render(typed)
        event = ce.parse_server_event(data, AT)
        assert type(event) is model, data["type"]
        assert event.type == data["type"]
        assert event.event_id == data["event_id"]
        assert event.received_at == AT
        assert event.raw is data


def test_typed_fields_carry_the_wire_values() -> None:
    samples = np.array([0, 1, -1, 32767, -32768], dtype=np.int16)
    delta = ce.parse_server_event(
        render(ev.AudioDelta("resp_1", "item_2", pcm16_to_base64(samples))), AT
    )
    assert isinstance(delta, ce.OutputAudioDelta)
    assert delta.response_id == "resp_1" and delta.item_id == "item_2"
    assert np.array_equal(delta.pcm(), samples)

    stopped = ce.parse_server_event(render(ev.SpeechStopped(980, "item_1")), AT)
    assert isinstance(stopped, ce.SpeechStopped) and stopped.audio_end_ms == 980

    error = ce.parse_server_event(
        render(
            ProtocolError(
                "invalid_value", "rate must be 16000 or 24000", "session.rate", "e7"
            ).event()
        ),
        AT,
    )
    assert isinstance(error, ce.ErrorEvent)
    assert error.error.code == "invalid_value" and error.error.event_id == "e7"
    assert error.error.describe() == (
        "invalid_request_error: rate must be 16000 or 24000 "
        "(code=invalid_value, param=session.rate)"
    )

    session = SessionConfig.model_validate({"audio": {"input": {"format": {"rate": 16000}}}})
    updated = ce.parse_server_event(render(ev.SessionUpdated(session)), AT)
    assert isinstance(updated, ce.SessionUpdated)
    assert (updated.input_rate, updated.output_rate) == (16000, 24000)


def test_response_done_exposes_the_x_turn_extension() -> None:
    timings = TurnTimings()
    timings.mark("speech_stopped", 10.0)
    timings.mark("response_created", 10.004)
    timings.mark("first_audio_sent", 10.35)
    timings.silence_window_ms = 500.0
    timings.speech_end_audio_ms = 1520.0
    x_turn = ev.TurnReport("sim", "step-audio-r1", True, "mps", timings.report())
    response = reply("completed", rate=16000, turn=x_turn)
    done = ce.parse_server_event(render(ev.ReplyEnded(response)), AT)
    assert isinstance(done, ce.ResponseDone)
    assert done.status == "completed"
    assert done.response.output_rate == 16000
    assert done.x_turn is not None
    assert (done.x_turn.engine, done.x_turn.model, done.x_turn.policy) == (
        "sim",
        "step-audio-r1",
        "mps",
    )
    assert done.x_turn.simulated is True
    assert done.x_turn.timings is not None
    assert done.x_turn.timings.origin == "speech_stopped"
    assert done.x_turn.timings.stages_ms["first_audio_sent"] == pytest.approx(350.0)
    assert done.x_turn.timings.silence_window_ms == 500.0
    assert done.x_turn.timings.speech_end_audio_ms == 1520.0


def test_response_done_from_a_plain_openai_server_has_no_x_turn() -> None:
    response = reply("cancelled", speaks=False)
    done = ce.parse_server_event(render(ev.ReplyEnded(response)), AT)
    assert isinstance(done, ce.ResponseDone)
    assert done.status == "cancelled" and done.x_turn is None


def test_unknown_event_types_parse_as_generic_events_with_the_raw_dict() -> None:
    data = {"type": "rate_limits.updated", "event_id": "e1", "rate_limits": [{"name": "x"}]}
    event = ce.parse_server_event(data, AT)
    assert type(event) is ce.ServerEvent
    assert event.type == "rate_limits.updated"
    assert event.raw == data
    assert event.model_extra == {"rate_limits": [{"name": "x"}]}


def test_unknown_fields_of_known_events_are_kept() -> None:
    data = render(ev.SpeechStarted(40, "item_1")) | {"x_vad_probability": 0.93}
    event = ce.parse_server_event(data, AT)
    assert isinstance(event, ce.SpeechStarted)
    assert event.model_extra == {"x_vad_probability": 0.93}


def test_a_known_type_with_a_payload_that_does_not_fit_parses_generically() -> None:
    data = {"type": "response.output_audio.delta", "event_id": "e1", "response_id": "r"}
    event = ce.parse_server_event(data, AT)
    assert type(event) is ce.ServerEvent
    assert event.type == "response.output_audio.delta"
    assert event.raw["response_id"] == "r"


def test_the_wire_cannot_set_the_sdk_fields() -> None:
    data = {"type": "input_audio_buffer.cleared", "received_at": "soon", "raw": 5}
    event = ce.parse_server_event(data, AT)
    assert isinstance(event, ce.InputAudioCleared)
    assert event.received_at == AT
    assert event.raw is data


@pytest.mark.parametrize("data", [{"event_id": "e1"}, {"type": 3}, ["session.created"]])
def test_a_message_without_a_string_type_is_rejected(data: object) -> None:
    with pytest.raises(ValueError, match="string 'type'"):
        ce.parse_server_event(data, AT)  # type: ignore[arg-type]
