"""Prometheus metrics of one service instance (its own registry: no process-global state)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from realtime.telemetry.timings import TurnTimings

_LATENCY_BUCKETS = (
    0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6, 0.8,
    1.0, 1.25, 1.5, 2.0, 3.0, 5.0, 10.0,
)  # fmt: skip

# (stage name in the metric, from mark, to mark): the stages a turn's latency splits into.
STAGE_SPANS = (
    ("vad_to_response", "speech_stopped", "response_created"),
    ("response_to_engine_request", "response_created", "engine_request_sent"),
    ("engine_first_token", "engine_request_sent", "first_token"),
    ("engine_first_reply_text", "engine_request_sent", "first_reply_text"),
    ("tts_first_audio", "first_reply_text", "first_tts_audio"),
    ("tts_audio_to_send", "first_tts_audio", "first_audio_sent"),
    ("first_packet", "speech_stopped", "first_audio_sent"),
)


class ServiceMetrics:
    def __init__(self, engine_name: str, simulated: bool) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.info = Gauge(
            "step_realtime_engine_info",
            "The engine this service runs (value 1); simulated=true marks simulated figures",
            ["engine", "simulated"],
            registry=self.registry,
        )
        self.info.labels(engine=engine_name, simulated=str(simulated).lower()).set(1)
        # RSS, open file descriptors, CPU: what a leak or a soak shows first.
        ProcessCollector(registry=self.registry)
        self.asyncio_tasks = Gauge(
            "step_realtime_asyncio_tasks", "Tasks alive on the event loop",
            registry=self.registry,
        )  # fmt: skip
        self.asyncio_tasks.set_function(_live_tasks)
        self.sessions_active = Gauge(
            "step_realtime_sessions_active", "Connected sessions", ["transport"],
            registry=self.registry,
        )  # fmt: skip
        self.sessions_total = Counter(
            "step_realtime_sessions", "Sessions opened", ["transport"], registry=self.registry
        )
        self.turns_total = Counter(
            "step_realtime_turns",
            "User turns committed, by what ended them: silence (server_vad's window), semantic "
            "(the model judged the turn complete), max_silence (semantic_vad's longest pause), "
            "idle_timeout, commit (the client)",
            ["source"],
            registry=self.registry,
        )
        self.responses_total = Counter(
            "step_realtime_responses", "Responses finished", ["status"], registry=self.registry
        )
        self.barge_ins_total = Counter(
            "step_realtime_barge_ins", "Responses cut by user speech", registry=self.registry
        )
        self.speculative_responses_total = Counter(
            "step_realtime_speculative_responses",
            "Replies started at a candidate end of a turn: released (the turn ended there) or "
            "discarded unseen (the user went on)",
            ["outcome"],
            registry=self.registry,
        )
        self.false_interruptions_total = Counter(
            "step_realtime_false_interruptions",
            "Speech over a reply that paused it but was too short to cut it (the reply resumed)",
            registry=self.registry,
        )
        self.errors_total = Counter(
            "step_realtime_errors", "Error events sent to clients", ["code"], registry=self.registry
        )
        self.internal_errors_total = Counter(
            "step_realtime_internal_errors",
            "Unexpected exceptions caught by a session's supervision, by where they escaped",
            ["where"],
            registry=self.registry,
        )
        self.sessions_refused_total = Counter(
            "step_realtime_sessions_refused",
            "WebSocket handshakes and WebRTC offers refused before a session opened, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.sessions_ended_total = Counter(
            "step_realtime_sessions_ended_by_server",
            "Sessions the server ended: expired, shutting_down, internal_error",
            ["reason"],
            registry=self.registry,
        )
        self.rate_limited_total = Counter(
            "step_realtime_rate_limited_events",
            "Client events refused by a session's rate limits, by limit",
            ["limit"],
            registry=self.registry,
        )
        self.engine_retries_total = Counter(
            "step_realtime_engine_retries",
            "Engine requests tried again after failing before their first token",
            registry=self.registry,
        )
        self.stage_seconds = Histogram(
            "step_realtime_stage_seconds",
            "Latency of each stage of a turn (see README, 'Metrics')",
            ["stage"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.barge_in_stop_seconds = Histogram(
            "step_realtime_barge_in_stop_seconds",
            "From the VAD's speech start to the last frame of the cut reply leaving the server",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.vad_batch_size = Histogram(
            "step_realtime_vad_batch_chunks",
            "512-sample chunks per VAD model call, across all sessions",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )

        self.input_lag_seconds = Histogram(
            "step_realtime_input_lag_seconds",
            "From an input frame's arrival to the VAD and turn decisions having acted on it",
            buckets=(0.005, 0.01, 0.02, 0.035, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.smart_turn_batch_size = Histogram(
            "step_realtime_smart_turn_batch_turns",
            "Turns per Smart Turn model call (semantic_vad), across all sessions",
            buckets=(1, 2, 4, 8, 16, 32),
            registry=self.registry,
        )
        self.smart_turn_seconds = Histogram(
            "step_realtime_smart_turn_call_seconds",
            "Worker time of one Smart Turn call (features and model)",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def watch_engine(self, load_report: Callable[[], Mapping[str, Mapping[str, float]]]) -> None:
        """Export the engine's per-server state at each scrape:
        ``step_realtime_engine_server{server, measure}``."""
        self.registry.register(_EngineServers(load_report))

    def observe_smart_turn(self, batch_size: int, seconds: float) -> None:
        self.smart_turn_batch_size.observe(batch_size)
        self.smart_turn_seconds.observe(seconds)

    def observe_turn(self, timings: TurnTimings) -> None:
        marks = dict(timings.marks)
        firsts = [marks[m] for m in ("first_reasoning_token", "first_answer_token") if m in marks]
        if firsts:
            marks["first_token"] = min(firsts)
        for stage, start, end in STAGE_SPANS:
            if start in marks and end in marks:
                self.stage_seconds.labels(stage=stage).observe(max(0.0, marks[end] - marks[start]))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _live_tasks() -> float:
    try:
        return float(len(asyncio.all_tasks()))
    except RuntimeError:  # rendered outside the event loop
        return float("nan")


class _EngineServers(Collector):
    def __init__(self, load_report: Callable[[], Mapping[str, Mapping[str, float]]]) -> None:
        self._load_report = load_report

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "step_realtime_engine_server",
            "Each engine server's state and load: up, breaker_open, overloaded, full, sessions "
            "(from this gateway), running, waiting, kv_cache_usage (from its /metrics)",
            labels=["server", "measure"],
        )
        for server, measures in self._load_report().items():
            for measure, value in measures.items():
                family.add_metric([server, measure], value)
        yield family
