"""Per-turn samples measured at the client, and their percentiles per metric and per stage.

Every client time is ``time.monotonic()`` on the benchmark's machine; the server's stage
times come from ``response.x_turn.timings.stages_ms`` (ms from ``speech_stopped``).

Gateway overhead is what the service adds on top of the unavoidable parts of a turn:

    gateway_overhead_ms = first_packet_ms - silence_window_ms - engine_ms - tts_ms

where ``first_packet_ms`` is measured at the client (last voiced sample sent -> first reply
audio received), ``silence_window_ms`` is the VAD's ``silence_duration_ms`` that the server
waits out before it may end the turn, ``engine_ms`` is ``first_reply_text -
engine_request_sent`` and ``tts_ms`` is ``first_tts_audio - first_reply_text``, both as the
server reports them. What remains is VAD detection beyond the silence window, session and
response bookkeeping, resampling, framing, pacing, queueing and the network, both ways.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from realtime.client.turn import TurnResult

ENGINE_START_STAGE = "engine_request_sent"
REPLY_TEXT_STAGE = "first_reply_text"
TTS_AUDIO_STAGE = "first_tts_audio"

TurnKind = Literal["turn", "barge_in", "after_barge_in", "connect"]
PERCENTILES = (50, 90, 99)
# A number standing alone (a duration, a count), not part of an address, id or path.
_NUMBER = re.compile(r"(?<![\w./:])\d+(?:\.\d+)?(?![\w./:])")
_ERROR_KIND_CHARS = 200


@dataclass(frozen=True)
class MetricSpec:
    """One client-side metric: its JSON name, its label in tables and what it measures."""

    name: str
    label: str
    meaning: str
    latency: bool = True  # latencies get a CDF chart; durations do not


CLIENT_METRICS = (
    MetricSpec(
        "first_packet_ms", "first-packet latency",
        "last voiced sample sent -> first reply audio received",
    ),
    MetricSpec(
        "full_reply_ms", "time to full reply",
        "last voiced sample sent -> last reply audio received (completed replies)",
    ),
    MetricSpec(
        "reply_audio_ms", "reply audio duration",
        "duration of the reply audio received (completed replies)", latency=False,
    ),
    MetricSpec(
        "endpoint_ms", "end-of-turn detection",
        "last voiced sample sent -> input_audio_buffer.speech_stopped received",
    ),
    MetricSpec(
        "gateway_overhead_ms", "gateway overhead",
        "first-packet latency - VAD silence window - engine time - TTS time",
    ),
    MetricSpec(
        "barge_in_stop_ms", "barge-in stop time",
        "first sample of speech over the reply sent -> last frame of that reply received",
    ),
)  # fmt: skip
METRICS_BY_NAME: Mapping[str, MetricSpec] = {metric.name: metric for metric in CLIENT_METRICS}

DERIVED_STAGES = {
    "engine_ms": f"{ENGINE_START_STAGE} -> {REPLY_TEXT_STAGE}",
    "tts_ms": f"{REPLY_TEXT_STAGE} -> {TTS_AUDIO_STAGE}",
}


class TurnSample(BaseModel):
    """One turn as the benchmark saw it; ms values are None where they do not apply."""

    sessions: int = Field(description="the concurrency level this turn ran at")
    session: int
    turn: int
    kind: TurnKind
    utterance: str
    started_s: float = Field(description="seconds from the start of the level")
    status: str = Field(description="response status, or timeout / error / connect_error")
    error: str | None = None
    response_id: str | None = None
    first_packet_ms: float | None = None
    full_reply_ms: float | None = None
    reply_audio_ms: float | None = None
    endpoint_ms: float | None = None
    gateway_overhead_ms: float | None = None
    barge_in_stop_ms: float | None = None
    engine_ms: float | None = None
    tts_ms: float | None = None
    silence_window_ms: float | None = None
    stage_origin: str | None = None
    stages_ms: dict[str, float] = Field(default_factory=dict)
    engine: str | None = None
    model: str | None = None
    simulated: bool | None = None
    policy: str | None = None
    user_transcript: str | None = None
    reply_text: str | None = None

    def value(self, name: str) -> float | None:
        """A client metric or derived stage by name."""
        value = getattr(self, name)
        return None if value is None else float(value)


def _span(stages: Mapping[str, float], start: str, end: str) -> float | None:
    if start in stages and end in stages:
        return stages[end] - stages[start]
    return None


def engine_time_ms(stages: Mapping[str, float]) -> float | None:
    """The engine's own time to the first reply text, as the server reports it."""
    return _span(stages, ENGINE_START_STAGE, REPLY_TEXT_STAGE)


def tts_time_ms(stages: Mapping[str, float]) -> float | None:
    """TTS time from the first reply text to its first audio, as the server reports it."""
    return _span(stages, REPLY_TEXT_STAGE, TTS_AUDIO_STAGE)


def gateway_overhead_ms(
    first_packet_ms: float | None,
    silence_window_ms: float | None,
    stages: Mapping[str, float],
) -> float | None:
    """``first_packet_ms - silence_window_ms - engine_ms - tts_ms`` (see the module doc);
    None when any part is missing."""
    engine, tts = engine_time_ms(stages), tts_time_ms(stages)
    if first_packet_ms is None or silence_window_ms is None or engine is None or tts is None:
        return None
    return first_packet_ms - silence_window_ms - engine - tts


def _ms_between(start: float | None, end: float | None) -> float | None:
    if start is None or end is None:
        return None
    return 1000.0 * (end - start)


def sample_from_turn(
    result: TurnResult,
    *,
    sessions: int,
    session: int,
    turn: int,
    kind: TurnKind,
    utterance: str,
    level_started_at: float,
    barge_in_sent_at: float | None = None,
) -> TurnSample:
    """The sample of a finished turn. ``barge_in_sent_at`` is when the first sample of speech
    over this turn's reply was sent (barge-in turns only)."""
    response = result.response
    x_turn = response.x_turn
    timings = x_turn.timings if x_turn is not None else None
    stages = dict(timings.stages_ms) if timings is not None else {}
    silence_window = timings.silence_window_ms if timings is not None else None
    first_packet = result.first_packet_latency_ms
    completed = response.status == "completed"
    barge_in_stop = None
    if barge_in_sent_at is not None and response.status == "cancelled":
        stop = _ms_between(barge_in_sent_at, response.last_audio_at)
        # The reply may have gone quiet before the speech began: it then stopped at once.
        barge_in_stop = None if stop is None else max(0.0, stop)
    errors = "; ".join(error.error.describe() for error in response.errors) or None
    return TurnSample(
        sessions=sessions,
        session=session,
        turn=turn,
        kind=kind,
        utterance=utterance,
        started_s=result.stream_started_at - level_started_at,
        status=response.status,
        error=errors,
        response_id=response.response_id,
        first_packet_ms=first_packet,
        full_reply_ms=(
            _ms_between(result.last_voiced_sent_at, response.last_audio_at) if completed else None
        ),
        reply_audio_ms=response.audio_ms if completed else None,
        endpoint_ms=_ms_between(result.last_voiced_sent_at, result.speech_stopped_at),
        gateway_overhead_ms=gateway_overhead_ms(first_packet, silence_window, stages),
        barge_in_stop_ms=barge_in_stop,
        engine_ms=engine_time_ms(stages),
        tts_ms=tts_time_ms(stages),
        silence_window_ms=silence_window,
        stage_origin=timings.origin if timings is not None else None,
        stages_ms=stages,
        engine=x_turn.engine if x_turn is not None else None,
        model=x_turn.model if x_turn is not None else None,
        simulated=x_turn.simulated if x_turn is not None else None,
        policy=x_turn.policy if x_turn is not None else None,
        user_transcript=response.user_transcript,
        reply_text=response.reply_text,
    )


def failed_sample(
    *,
    sessions: int,
    session: int,
    turn: int,
    kind: TurnKind,
    utterance: str,
    started_s: float,
    status: Literal["timeout", "error", "connect_error"],
    error: str,
) -> TurnSample:
    """A turn (or a session's connection) that ended in a client-side failure."""
    return TurnSample(
        sessions=sessions,
        session=session,
        turn=turn,
        kind=kind,
        utterance=utterance,
        started_s=started_s,
        status=status,
        error=error,
    )


class Distribution(BaseModel):
    """Percentiles (linear interpolation between ranks) of one metric's values, in ms."""

    count: int
    p50: float | None = None
    p90: float | None = None
    p99: float | None = None
    max: float | None = None
    min: float | None = None
    mean: float | None = None


STATISTICS = ("p50", "p90", "p99", "max")


def distribution(values: Iterable[float]) -> Distribution:
    data = np.asarray([value for value in values if value is not None], dtype=np.float64)
    if data.size == 0:
        return Distribution(count=0)
    p50, p90, p99 = (float(value) for value in np.percentile(data, PERCENTILES))
    return Distribution(
        count=int(data.size),
        p50=p50,
        p90=p90,
        p99=p99,
        max=float(data.max()),
        min=float(data.min()),
        mean=float(data.mean()),
    )


class TurnCounts(BaseModel):
    """How the turns of a level ended."""

    turns: int = 0
    completed: int = 0
    cancelled: int = 0
    failed: int = 0
    timeouts: int = 0
    errors: int = 0
    connect_errors: int = 0
    barge_ins: int = 0
    barge_ins_missed: int = 0

    @property
    def problems(self) -> int:
        """Turns and sessions that did not end as the scenario meant them to."""
        return self.failed + self.timeouts + self.errors + self.connect_errors

    @property
    def attempts(self) -> int:
        return self.turns + self.connect_errors


def count_turns(samples: Iterable[TurnSample]) -> TurnCounts:
    counts = TurnCounts()
    for sample in samples:
        if sample.kind == "connect":
            counts.connect_errors += 1
            continue
        counts.turns += 1
        match sample.status:
            case "completed":
                counts.completed += 1
            case "cancelled":
                counts.cancelled += 1
            case "timeout":
                counts.timeouts += 1
            case "error":
                counts.errors += 1
            case _:
                counts.failed += 1
        if sample.kind == "barge_in":
            counts.barge_ins += 1
            if sample.status == "completed":
                counts.barge_ins_missed += 1
    return counts


class LevelSummary(BaseModel):
    """The percentiles of one concurrency level: client metrics, server stages, outcomes."""

    metrics: dict[str, Distribution]
    stages: dict[str, Distribution]
    counts: TurnCounts
    error_messages: dict[str, int] = Field(
        default_factory=dict, description="error kinds (see error_kind) and their counts"
    )


def error_kind(message: str) -> str:
    """An error message without its particulars (numbers, ids, the recent-events tail), so
    that the same failure in many turns counts as one kind."""
    head = re.split(r" \(|; ", message, maxsplit=1)[0]
    return _NUMBER.sub("N", head)[:_ERROR_KIND_CHARS]


def summarize(samples: list[TurnSample], stage_order: Iterable[str] = ()) -> LevelSummary:
    """Percentiles of every client metric, every server stage seen (in ``stage_order``
    first, then as met) and the derived engine/TTS spans."""
    metrics = {
        metric.name: distribution(
            value for sample in samples if (value := sample.value(metric.name)) is not None
        )
        for metric in CLIENT_METRICS
    }
    names = list(stage_order)
    for sample in samples:
        names += [stage for stage in sample.stages_ms if stage not in names]
    stages = {
        stage: distribution(s.stages_ms[stage] for s in samples if stage in s.stages_ms)
        for stage in names
        if any(stage in s.stages_ms for s in samples)
    }
    for name in DERIVED_STAGES:
        stages[name] = distribution(
            value for sample in samples if (value := sample.value(name)) is not None
        )
    messages = Counter(error_kind(sample.error) for sample in samples if sample.error)
    return LevelSummary(
        metrics=metrics,
        stages=stages,
        counts=count_turns(samples),
        error_messages=dict(messages.most_common(20)),
    )
