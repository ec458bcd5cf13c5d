"""Per-turn samples from the SDK's turn results, gateway overhead, percentiles and outcomes."""

from __future__ import annotations

from typing import Any

import pytest

from realtime.bench.metrics import (
    TurnSample,
    count_turns,
    distribution,
    gateway_overhead_ms,
    sample_from_turn,
    summarize,
)
from realtime.client.turn import TurnResult
from realtime.telemetry.timings import STAGES
from tests.realtime.bench.samples import STAGES_MS, turn_result


def _sample(turn: TurnResult, barge_in_sent_at: float | None = None) -> TurnSample:
    return sample_from_turn(
        turn,
        sessions=1,
        session=0,
        turn=0,
        kind="barge_in" if barge_in_sent_at is not None else "turn",
        utterance="hello",
        level_started_at=98.0,
        barge_in_sent_at=barge_in_sent_at,
    )


def test_a_completed_turn_gives_every_client_metric() -> None:
    sample = _sample(turn_result())

    assert sample.first_packet_ms == pytest.approx(1000.0)
    assert sample.full_reply_ms == pytest.approx(3000.0)
    assert sample.reply_audio_ms == pytest.approx(2000.0)
    assert sample.endpoint_ms == pytest.approx(600.0)
    assert sample.started_s == pytest.approx(0.8)
    assert sample.barge_in_stop_ms is None
    assert (sample.engine, sample.policy, sample.simulated) == ("echo", "after-think", False)


def test_gateway_overhead_is_first_packet_minus_silence_window_engine_and_tts() -> None:
    sample = _sample(turn_result())

    # 1000 ms first packet - 500 ms silence window - 300 ms engine - 80 ms TTS
    assert sample.engine_ms == pytest.approx(300.0)
    assert sample.tts_ms == pytest.approx(80.0)
    assert sample.gateway_overhead_ms == pytest.approx(120.0)


def test_gateway_overhead_is_unknown_when_the_server_did_not_report_a_stage() -> None:
    stages = {key: value for key, value in STAGES_MS.items() if key != "first_tts_audio"}

    assert _sample(turn_result(stages=stages)).gateway_overhead_ms is None
    assert gateway_overhead_ms(None, 500.0, STAGES_MS) is None
    assert gateway_overhead_ms(900.0, None, STAGES_MS) is None


def test_a_cancelled_reply_has_a_barge_in_stop_time_but_no_full_reply() -> None:
    sample = _sample(turn_result("cancelled", last_audio_at=101.7), barge_in_sent_at=101.5)

    assert sample.barge_in_stop_ms == pytest.approx(200.0)
    assert sample.full_reply_ms is None
    assert sample.reply_audio_ms is None
    assert sample.first_packet_ms == pytest.approx(1000.0)


def test_a_reply_that_went_quiet_before_the_barge_in_stopped_at_once() -> None:
    sample = _sample(turn_result("cancelled", last_audio_at=101.4), barge_in_sent_at=101.5)

    assert sample.barge_in_stop_ms == 0.0


def test_a_reply_that_completed_despite_the_barge_in_has_no_stop_time() -> None:
    samples = [_sample(turn_result("completed"), barge_in_sent_at=101.5)]

    assert samples[0].barge_in_stop_ms is None
    counts = count_turns(samples)
    assert (counts.barge_ins, counts.barge_ins_missed) == (1, 1)


def test_percentiles_interpolate_between_ranks() -> None:
    stats = distribution(float(value) for value in range(1, 101))

    assert stats.count == 100
    assert stats.p50 == pytest.approx(50.5)
    assert stats.p90 == pytest.approx(90.1)
    assert stats.p99 == pytest.approx(99.01)
    assert (stats.max, stats.min, stats.mean) == (100.0, 1.0, 50.5)


def test_an_empty_metric_has_a_count_of_zero_and_no_percentiles() -> None:
    stats = distribution([])

    assert stats.count == 0
    assert stats.p50 is None and stats.max is None


def test_outcomes_are_counted_by_status_and_connection_failures_apart() -> None:
    base: dict[str, Any] = {"sessions": 3, "session": 0, "turn": 0, "utterance": "x"}
    samples = [
        TurnSample(kind="turn", started_s=0.0, status="completed", **base),
        TurnSample(kind="turn", started_s=0.0, status="failed", error="boom", **base),
        TurnSample(kind="turn", started_s=0.0, status="timeout", error="slow", **base),
        TurnSample(kind="connect", started_s=0.0, status="connect_error", error="no", **base),
    ]

    counts = count_turns(samples)

    assert (counts.turns, counts.completed, counts.failed, counts.timeouts) == (3, 1, 1, 1)
    assert counts.connect_errors == 1
    assert counts.problems == 3
    assert counts.attempts == 4


def test_a_summary_lists_the_server_stages_in_turn_order_and_the_derived_spans() -> None:
    summary = summarize([_sample(turn_result()), _sample(turn_result())], STAGES)

    reported = [stage for stage in STAGES if stage in STAGES_MS]  # no reasoning stage here
    assert list(summary.stages) == [*reported, "engine_ms", "tts_ms"]
    assert summary.stages["first_tts_audio"].p50 == pytest.approx(385.0)
    assert summary.metrics["gateway_overhead_ms"].count == 2
    assert summary.counts.completed == 2


def test_the_same_failure_in_many_turns_is_counted_as_one_kind() -> None:
    base: dict[str, Any] = {"sessions": 2, "session": 0, "turn": 0, "utterance": "x"}
    errors = [
        "no response.done within 32.18 s (response resp_a in progress); last events received: a",
        "no response.done within 32.49 s (response resp_b in progress); last events received: b",
        "connection to ws://127.0.0.1:8097/v1/realtime closed (code 1006) while waiting",
    ]
    samples = [
        TurnSample(kind="turn", started_s=0.0, status="timeout", error=error, **base)
        for error in errors
    ]

    assert summarize(samples).error_messages == {
        "no response.done within N s": 2,
        "connection to ws://127.0.0.1:8097/v1/realtime closed": 1,
    }
