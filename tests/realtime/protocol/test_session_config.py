"""session.update merges a partial session into the current one, or changes nothing."""

from __future__ import annotations

import pytest

from realtime.protocol.errors import ProtocolError
from realtime.protocol.session_config import SessionConfig, apply_session_update


def test_defaults_are_openai_defaults_server_vad_on_and_audio_out() -> None:
    config = SessionConfig()
    assert config.output_modalities == ["audio"]
    assert config.input_rate == 24_000 and config.output_rate == 24_000
    vad = config.audio.input.turn_detection
    assert vad is not None
    assert (vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (0.5, 300, 500)


def test_partial_update_keeps_the_other_fields() -> None:
    config = SessionConfig(instructions="be brief")
    updated = apply_session_update(
        config,
        {
            "audio": {
                "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}
            }
        },
        None,
    )
    vad = updated.audio.input.turn_detection
    assert vad is not None and vad.silence_duration_ms == 200 and vad.threshold == 0.5
    assert updated.instructions == "be brief"
    assert config.audio.input.turn_detection is not None
    assert config.audio.input.turn_detection.silence_duration_ms == 500


def test_null_turn_detection_means_manual_commit() -> None:
    updated = apply_session_update(
        SessionConfig(), {"audio": {"input": {"turn_detection": None}}}, None
    )
    assert updated.audio.input.turn_detection is None


def test_16khz_input_is_accepted_and_other_rates_are_not() -> None:
    updated = apply_session_update(
        SessionConfig(),
        {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}},
        None,
    )
    assert updated.input_rate == 16_000
    with pytest.raises(ProtocolError) as caught:
        apply_session_update(
            SessionConfig(), {"audio": {"input": {"format": {"rate": 44100}}}}, None
        )
    assert caught.value.param == "session.audio.input.format.rate"


def test_bad_update_names_the_parameter_and_changes_nothing() -> None:
    config = SessionConfig()
    with pytest.raises(ProtocolError) as caught:
        apply_session_update(
            config,
            {"audio": {"input": {"turn_detection": {"type": "server_vad", "threshold": 3}}}},
            "e7",
        )
    assert caught.value.param == "session.audio.input.turn_detection.threshold"
    assert caught.value.event_id == "e7"
    assert config.audio.input.turn_detection is not None
    assert config.audio.input.turn_detection.threshold == 0.5


def test_unknown_session_field_is_an_unknown_parameter() -> None:
    with pytest.raises(ProtocolError) as caught:
        apply_session_update(SessionConfig(), {"voice_of_doom": True}, None)
    assert caught.value.code == "unknown_parameter"


def test_openai_fields_the_service_does_not_use_are_accepted() -> None:
    updated = apply_session_update(
        SessionConfig(),
        {"type": "realtime", "model": "gpt-realtime", "tracing": "auto", "tools": []},
        None,
    )
    assert updated.tools == []


def test_reasoning_effort_and_speaking_policy_are_settable() -> None:
    updated = apply_session_update(
        SessionConfig(), {"reasoning": {"effort": "low"}, "speaking": {"policy": "mps"}}, None
    )
    assert updated.reasoning.effort == "low"
    assert updated.speaking.policy == "mps"


def test_session_wire_form_validates_against_the_openai_model() -> None:
    from openai.types.realtime import RealtimeSessionCreateRequest

    wire = SessionConfig(model="echo-pocketsphinx").wire()
    parsed = RealtimeSessionCreateRequest.model_validate(wire)
    assert parsed.audio is not None and parsed.audio.input is not None


def test_session_tools_and_tool_choice_are_kept_and_checked() -> None:
    tool = {"type": "function", "name": "get_weather", "description": "Weather", "parameters": {}}
    updated = apply_session_update(
        SessionConfig(), {"tools": [tool], "tool_choice": "required"}, None
    )
    assert [t.name for t in updated.tools] == ["get_weather"]
    assert updated.tool_choice == "required"
    assert updated.wire()["tools"][0]["name"] == "get_weather"

    with pytest.raises(ProtocolError, match="not one of the tools"):
        apply_session_update(updated, {"tool_choice": {"type": "function", "name": "nope"}}, None)
    with pytest.raises(ProtocolError, match="distinct"):
        apply_session_update(updated, {"tools": [tool, tool]}, None)
    with pytest.raises(ProtocolError) as mcp:
        apply_session_update(updated, {"tools": [{"type": "mcp", "server_label": "x"}]}, None)
    assert mcp.value.param is not None and mcp.value.param.startswith("session.tools")


def test_g711_formats_are_8khz_and_validate_against_openai_models() -> None:
    from openai.types.realtime import RealtimeSessionCreateRequest

    audio = {
        "input": {"format": {"type": "audio/pcmu"}},
        "output": {"format": {"type": "audio/pcma"}},
    }
    patch = {"audio": audio}
    config = apply_session_update(SessionConfig(), patch, None)
    assert (config.input_rate, config.output_rate) == (8_000, 8_000)
    wire = config.wire()
    assert wire["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert wire["audio"]["output"]["format"] == {"type": "audio/pcma"}
    RealtimeSessionCreateRequest.model_validate({k: wire[k] for k in ("type", "audio")})
    pcm16k = {"input": {"format": {"type": "audio/pcm", "rate": 16000}}}
    back = apply_session_update(config, {"audio": pcm16k}, None)
    assert back.input_rate == 16_000


def test_an_unknown_audio_format_is_refused_by_its_parameter_path() -> None:
    with pytest.raises(ProtocolError) as caught:
        apply_session_update(
            SessionConfig(), {"audio": {"input": {"format": {"type": "audio/g729"}}}}, "e1"
        )
    assert caught.value.param is not None and caught.value.param.startswith(
        "session.audio.input.format"
    )
    with pytest.raises(ProtocolError) as caught:
        apply_session_update(
            SessionConfig(),
            {"audio": {"input": {"format": {"type": "audio/pcmu", "rate": 16000}}}},
            "e2",
        )
    assert caught.value.param == "session.audio.input.format.rate"
