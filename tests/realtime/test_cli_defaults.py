"""``serve``'s defaults are the ones the service's own settings declare, not copies."""

from __future__ import annotations

from realtime.cli import build_parser
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
