"""OpenTelemetry traces: when tracing is on, and the span tree of a real turn (an in-process
session with the real VAD and espeak-ng, spans caught by the SDK's in-memory exporter)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import numpy as np
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from benchmarks.harness.speech import silence, synthesize
from realtime.session.services import SessionServices, SessionSettings
from realtime.session.session import Session
from realtime.telemetry.tracing import (
    Tracing,
    TracingOptions,
    tracer_provider,
    tracer_provider_for,
)
from realtime.turns.input import TurnSettings
from tests.realtime.session.support import RecordingSink, feed, session_services, until

RATE = 24_000


def test_tracing_is_off_unless_an_endpoint_is_given_or_configured() -> None:
    assert tracer_provider(TracingOptions(), environ={}) is None
    disabled = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", "OTEL_SDK_DISABLED": "true"}
    assert tracer_provider(TracingOptions(), environ=disabled) is None
    no_exporter = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318",
                   "OTEL_TRACES_EXPORTER": "none"}  # fmt: skip
    assert tracer_provider(TracingOptions(), environ=no_exporter) is None
    for options, env in (
        (TracingOptions(endpoint="http://127.0.0.1:4318"), {}),
        (TracingOptions(), {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}),
        (TracingOptions(protocol="grpc"), {"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "127.0.0.1:4317"}),
    ):
        provider = tracer_provider(options, environ=env)
        assert provider is not None
        provider.shutdown()
    with pytest.raises(ValueError, match="OTLP protocol"):
        env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "x", "OTEL_EXPORTER_OTLP_PROTOCOL": "pigeon"}
        tracer_provider(TracingOptions(), environ=env)


@pytest.fixture(scope="module")
async def traced() -> AsyncIterator[tuple[SessionServices, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = tracer_provider_for(exporter, batch=False)
    settings = SessionSettings(turns=TurnSettings(speculative_start=False))
    async with session_services(settings) as services:
        services.tracing = Tracing(provider)
        yield services, exporter
    provider.shutdown()


def by_name(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (found,) = [s for s in spans if s.name == name]
    return found


def ms_between(start_ns: int, end_ns: int) -> float:
    return (end_ns - start_ns) / 1e6


async def test_a_turn_is_a_span_under_its_session_with_a_child_per_stage(
    traced: tuple[SessionServices, InMemorySpanExporter],
) -> None:
    services, exporter = traced
    sink = RecordingSink()
    session = Session(services, sink)
    await session.start()
    try:
        speech = synthesize("What is the weather like in Paris?", RATE)
        await feed(session, np.concatenate([silence(0.3, RATE), speech, silence(1.5, RATE)]))
        await until(lambda: any(e["type"] == "response.done" for e in sink.events))
    finally:
        await session.close()
    done = next(e for e in sink.events if e["type"] == "response.done")
    x_turn = done["response"]["x_turn"]
    stages_ms = x_turn["timings"]["stages_ms"]

    spans = exporter.get_finished_spans()
    session_span = by_name(spans, "realtime.session")
    turn = by_name(spans, "realtime.turn")
    assert session_span.parent is None
    assert session_span.attributes is not None and turn.attributes is not None
    assert session_span.attributes["session.id"] == session.config.id
    assert turn.parent is not None and turn.parent.span_id == session_span.context.span_id
    assert turn.context.trace_id == session_span.context.trace_id
    assert turn.attributes["response.id"] == done["response"]["id"]
    assert turn.attributes["response.status"] == "completed"
    assert turn.attributes["speaking.policy"] == x_turn["policy"]
    for stage, ms in stages_ms.items():
        assert turn.attributes[f"x_turn.stages_ms.{stage}"] == ms, stage

    children = {s.name: s for s in spans if s.parent is not None
                and s.parent.span_id == turn.context.span_id}  # fmt: skip
    assert set(children) == {"end_of_turn", "engine_request", "tts_first_chunk",
                             "first_audio_sent"}  # fmt: skip
    first_token = by_name(spans, "first_token")
    request = children["engine_request"]
    assert first_token.parent is not None
    assert first_token.parent.span_id == request.context.span_id
    assert first_token.attributes is not None and first_token.attributes["token"] == "answer"

    # The spans' edges are the stages x_turn reports, in ms from the end of speech.
    assert session_span.start_time is not None
    stopped_ns = children["end_of_turn"].end_time
    assert stopped_ns is not None
    checks = {
        "engine_request_sent": request.start_time,
        "first_answer_token": first_token.end_time,
        "first_tts_audio": children["tts_first_chunk"].end_time,
        "first_audio_sent": children["first_audio_sent"].end_time,
        "response_done": turn.end_time,
    }
    for stage, at_ns in checks.items():
        assert at_ns is not None
        assert abs(ms_between(stopped_ns, at_ns) - stages_ms[stage]) < 1.0, stage
    silence_ms = children["end_of_turn"].attributes["silence_window_ms"]  # type: ignore[index]
    assert silence_ms == x_turn["timings"]["silence_window_ms"]
    assert session_span.start_time <= turn.start_time <= turn.end_time  # type: ignore[operator]
    assert turn.end_time <= session_span.end_time  # type: ignore[operator]
