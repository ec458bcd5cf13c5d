"""Command lines' defaults are the ones the settings, SDK and dataclasses declare, not copies."""

from __future__ import annotations

import inspect
from typing import Any

from realtime.bench.runner import LoadPlan
from realtime.bench.scenarios import TurnSettings as BenchTurnSettings
from realtime.call import run_call
from realtime.cli import build_parser
from realtime.client.client import RealtimeClient
from realtime.client.turn import speak_turn
from realtime.client.webrtc import RealtimeWebRtcClient
from realtime.protocol.session_config import SemanticVad, ServerVad
from realtime.server.admission import AdmissionLimits
from realtime.session.services import SessionSettings
from tts.factory import TtsOptions


def test_serve_defaults_are_the_settings_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    settings = SessionSettings()
    tts = TtsOptions()

    assert args.max_event_mb * 1024 * 1024 == settings.max_event_bytes
    assert args.policy is None  # chosen by the engine's capabilities (speaking.factory)
    assert args.formulation_tokens == settings.formulation_tokens
    assert args.first_formulation_tokens == settings.first_formulation_tokens
    assert args.articulation_tokens == settings.articulation_tokens
    assert args.max_buffered_ms == settings.max_buffered_reply_ms
    assert args.audio_lead_ms == settings.audio_lead_ms
    assert args.prefill_chunk_seconds == settings.turns.prefill_chunk_s
    assert args.interrupt_min_speech_ms == settings.turns.interruption.min_speech_ms
    assert args.silence_duration_ms == ServerVad().silence_duration_ms
    assert args.eagerness == SemanticVad().eagerness
    assert args.max_sessions == AdmissionLimits().max_sessions
    assert args.phone_echo_cancellation == settings.phone_echo_cancellation
    assert args.session_minutes * 60 == settings.max_session_s
    assert args.max_history_mb * 1024 * 1024 == settings.max_history_bytes
    assert (args.cosyvoice_version, args.cosyvoice_rate) == (
        tts.cosyvoice.version,
        tts.cosyvoice.sample_rate,
    )
    assert (args.tts, args.espeak_voice, args.espeak_wpm, args.tts_first_chunk_ms) == (
        tts.name,
        tts.espeak_voice,
        tts.espeak_words_per_minute,
        tts.first_chunk_ms,
    )


def defaults_of(function: Any) -> dict[str, Any]:
    return {
        name: parameter.default
        for name, parameter in inspect.signature(function).parameters.items()
        if parameter.default is not inspect.Parameter.empty
    }


def test_call_defaults_are_the_sdk_defaults() -> None:
    args = build_parser().parse_args(["call", "hello.wav"])
    call = defaults_of(run_call)
    turn = defaults_of(speak_turn)

    assert (args.silence_ms, args.timeout, args.chunk_ms) == (
        call["silence_ms"],
        call["timeout"],
        call["chunk_ms"],
    )
    assert call["open_timeout"] == defaults_of(RealtimeClient.connect)["open_timeout"]
    assert call["chunk_ms"] == turn["chunk_ms"]
    assert call["chunk_ms"] == defaults_of(RealtimeClient.stream_audio)["chunk_ms"]
    assert call["chunk_ms"] == defaults_of(RealtimeWebRtcClient.stream_audio)["chunk_ms"]
    assert (call["silence_ms"], call["timeout"]) == (
        turn["trailing_silence_ms"],
        turn["timeout"],
    )


def test_bench_defaults_are_the_plan_and_sdk_defaults() -> None:
    args = build_parser().parse_args(["bench"])
    call = build_parser().parse_args(["call", "hello.wav"])

    assert args.url == call.url
    assert args.pause == LoadPlan.pause_s
    assert args.barge_in_after_ms == BenchTurnSettings.barge_in_after_ms
    assert args.open_timeout == defaults_of(RealtimeClient.connect)["open_timeout"]
    assert args.silence_ms == call.silence_ms
