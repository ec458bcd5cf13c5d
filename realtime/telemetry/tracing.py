"""OpenTelemetry traces: a span per session, a span per turn, and a child span for each
stage of the turn, carrying the timings ``response.done`` reports in ``x_turn``.

Spans are written when a turn is over, from the turn's own timestamps (the same monotonic
marks ``x_turn`` is computed from, converted to wall-clock time), so tracing adds nothing to
the turn's path and cannot disagree with the wire. Off unless an OTLP endpoint is given
(``--otel-endpoint``) or set in the standard variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``); the exporter runs in the SDK's batch thread, never
on the event loop. Nothing here is global: the ``TracerProvider`` is passed in.

The tree of one turn (each span only when the turn reached its stages)::

    realtime.session            session.id, transport
      realtime.turn             response.id, status, engine, policy, x_turn.* timings
        end_of_turn             the silence the rule waited for, up to speech_stopped
        engine_request          engine_request_sent → response_done
          first_token           engine_request_sent → first reasoning or answer token
        tts_first_chunk         first_reply_text → first_tts_audio
        first_audio_sent        first_tts_audio → first_audio_sent (the first packet)
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor, SpanExporter
from opentelemetry.trace import Span, Tracer, set_span_in_context

SERVICE_NAME = "step-realtime"
TRACER_NAME = "realtime"

OtlpProtocol = Literal["http/protobuf", "grpc"]
AttributeValue = str | bool | int | float


@dataclass(frozen=True)
class TracingOptions:
    endpoint: str | None = None
    """An OTLP collector (``--otel-endpoint``); None: the OTEL_* variables decide."""
    protocol: OtlpProtocol | None = None
    """None: ``OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL``, else ``http/protobuf`` (the spec's
    default)."""


def tracer_provider(
    options: TracingOptions, environ: Mapping[str, str] | None = None
) -> TracerProvider | None:
    """A provider exporting over OTLP, or None when tracing is off (no endpoint anywhere,
    ``OTEL_SDK_DISABLED=true`` or ``OTEL_TRACES_EXPORTER=none``)."""
    env = os.environ if environ is None else environ
    if env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return None
    if env.get("OTEL_TRACES_EXPORTER", "otlp").lower() == "none":
        return None
    configured = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if options.endpoint is None and not configured:
        return None
    protocol = options.protocol or (
        env.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or env.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    )
    exporter = _otlp_exporter(protocol, options.endpoint)
    return tracer_provider_for(exporter, batch=True)


def tracer_provider_for(exporter: SpanExporter, *, batch: bool = True) -> TracerProvider:
    """A provider sending to ``exporter`` (``batch=False``: each span as it ends, for tests).
    The service name comes from ``OTEL_SERVICE_NAME`` when set."""
    resource = Resource.create({"service.name": SERVICE_NAME}).merge(Resource.create())
    provider = TracerProvider(resource=resource)
    processor = BatchSpanProcessor(exporter) if batch else SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    return provider


def _otlp_exporter(protocol: str, endpoint: str | None) -> SpanExporter:
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
            OTLPSpanExporter as GrpcExporter,
        )

        return GrpcExporter(endpoint=endpoint)
    if protocol != "http/protobuf":
        raise ValueError(f"OTLP protocol must be grpc or http/protobuf, not {protocol!r}")
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
        OTLPSpanExporter as HttpExporter,
    )

    if endpoint is not None and not endpoint.rstrip("/").endswith("/v1/traces"):
        endpoint = endpoint.rstrip("/") + "/v1/traces"  # a base URL, as the variable takes
    return HttpExporter(endpoint=endpoint)


@dataclass(frozen=True)
class TurnRecord:
    """One finished turn: ``marks`` are monotonic seconds of its stages (``TurnTimings``),
    ``stages_ms`` the milliseconds from its origin as ``x_turn`` reports them."""

    response_id: str
    status: str
    origin: str
    marks: Mapping[str, float]
    stages_ms: Mapping[str, float]
    silence_window_ms: float | None = None
    attributes: Mapping[str, AttributeValue] = field(default_factory=dict)


class SessionTrace:
    """The span of one session, and its turns' spans under it. A no-op without a tracer."""

    def __init__(self, tracer: Tracer | None, session_id: str, transport: str) -> None:
        self._tracer = tracer
        self._span: Span | None = None
        self._started = time.monotonic()
        # One offset from the monotonic clock to the wall clock for all of the session's
        # spans, so that their edges keep the order and gaps the marks had.
        self._epoch_offset_ns = time.time_ns() - time.monotonic_ns()
        if tracer is not None:
            self._span = tracer.start_span(
                "realtime.session",
                attributes={"session.id": session_id, "session.transport": transport},
                start_time=self._epoch_ns(self._started),
            )

    def _epoch_ns(self, monotonic_s: float) -> int:
        return self._epoch_offset_ns + round(monotonic_s * 1e9)

    def turn(self, record: TurnRecord) -> None:
        if self._tracer is None or self._span is None or not record.marks:
            return
        marks = record.marks
        start = min(marks.values())
        if "speech_stopped" in marks and record.silence_window_ms is not None:
            start = min(start, marks["speech_stopped"] - record.silence_window_ms / 1000.0)
        start = max(start, self._started)  # audio sent faster than real time ends early
        end = marks.get("response_done", max(marks.values()))
        attributes: dict[str, AttributeValue] = {
            "response.id": record.response_id,
            "response.status": record.status,
            "x_turn.origin": record.origin,
            **{f"x_turn.stages_ms.{stage}": ms for stage, ms in record.stages_ms.items()},
            **record.attributes,
        }
        if record.silence_window_ms is not None:
            attributes["x_turn.silence_window_ms"] = record.silence_window_ms
        turn = self._tracer.start_span(
            "realtime.turn",
            context=set_span_in_context(self._span),
            start_time=self._epoch_ns(start),
            attributes=attributes,
        )
        ms = record.stages_ms
        if "speech_stopped" in marks and record.silence_window_ms is not None:
            self._child(turn, "end_of_turn", start, marks["speech_stopped"],
                        {"silence_window_ms": record.silence_window_ms,
                         "stage_ms": ms.get("speech_stopped", 0.0)})  # fmt: skip
        if "engine_request_sent" in marks:
            request = self._child(
                turn, "engine_request", marks["engine_request_sent"], end,
                {"stage_ms": ms.get("engine_request_sent", 0.0)}, keep_open=True,
            )  # fmt: skip
            firsts = [s for s in ("first_reasoning_token", "first_answer_token") if s in marks]
            if firsts:
                first = min(firsts, key=lambda s: marks[s])
                self._child(request, "first_token", marks["engine_request_sent"], marks[first],
                            {"token": first.removeprefix("first_").removesuffix("_token"),
                             "stage_ms": ms.get(first, 0.0)})  # fmt: skip
            request.end(end_time=self._epoch_ns(end))
        if "first_reply_text" in marks and "first_tts_audio" in marks:
            self._child(turn, "tts_first_chunk", marks["first_reply_text"],
                        marks["first_tts_audio"],
                        {"stage_ms": ms.get("first_tts_audio", 0.0)})  # fmt: skip
        if "first_audio_sent" in marks:
            begin = marks.get("first_tts_audio", marks["first_audio_sent"])
            self._child(turn, "first_audio_sent", begin, marks["first_audio_sent"],
                        {"stage_ms": ms.get("first_audio_sent", 0.0)})  # fmt: skip
        turn.end(end_time=self._epoch_ns(end))

    def _child(
        self,
        parent: Span,
        name: str,
        start: float,
        end: float,
        attributes: Mapping[str, AttributeValue],
        *,
        keep_open: bool = False,
    ) -> Span:
        assert self._tracer is not None
        span = self._tracer.start_span(
            name,
            context=set_span_in_context(parent),
            start_time=self._epoch_ns(start),
            attributes=dict(attributes),
        )
        if not keep_open:
            span.end(end_time=self._epoch_ns(max(start, end)))
        return span

    def end(self) -> None:
        if self._span is not None:
            self._span.end(end_time=self._epoch_ns(time.monotonic()))
            self._span = None


class Tracing:
    """The service's tracing: sessions' traces from one ``TracerProvider`` (None: off)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer(TRACER_NAME) if provider is not None else None

    @property
    def enabled(self) -> bool:
        return self._tracer is not None

    def session(self, session_id: str, transport: str) -> SessionTrace:
        return SessionTrace(self._tracer, session_id, transport)

    def shutdown(self) -> None:
        """Flush and stop the exporter (blocking: call it off the event loop)."""
        if self.provider is not None:
            self.provider.shutdown()
