"""The listening-capacity benchmark's pure parts: its pre-built WebSocket frames, the
Prometheus histogram arithmetic, and the py-spy summary (no server, no sockets)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from benchmarks.capacity.config import LAG_METRIC
from benchmarks.capacity.load import masked_text_frame
from benchmarks.capacity.profile import summarize_profile
from benchmarks.harness.procfs import cpu_list
from benchmarks.harness.prometheus import (
    bucket_quantile,
    histogram,
    labelled,
    metric_delta,
    parse_metrics,
)


def parse_client_frame(data: bytes) -> Frame:
    """What a server's frame parser makes of ``data`` (a client frame must be masked)."""
    reader = StreamReader()
    reader.feed_data(data)
    parser = Frame.parse(reader.read_exact, mask=True)
    with pytest.raises(StopIteration) as done:
        next(parser)
    frame: Frame = done.value.value
    return frame


@pytest.mark.parametrize("length", [3, 125, 126, 1300, 70_000])
def test_masked_text_frame_parses_back(length: int) -> None:
    text = json.dumps({"type": "input_audio_buffer.append", "audio": "A" * length})
    frame = parse_client_frame(masked_text_frame(text))
    assert frame.opcode is Opcode.TEXT
    assert frame.fin
    assert bytes(frame.data).decode() == text


METRICS = """\
# HELP step_realtime_input_lag_seconds lag
# TYPE step_realtime_input_lag_seconds histogram
step_realtime_input_lag_seconds_bucket{le="0.005"} %d
step_realtime_input_lag_seconds_bucket{le="0.05"} %d
step_realtime_input_lag_seconds_bucket{le="0.1"} %d
step_realtime_input_lag_seconds_bucket{le="+Inf"} %d
step_realtime_input_lag_seconds_count %d
step_realtime_input_lag_seconds_sum 1.5
step_realtime_input_lag_seconds_created 1.7e9
step_realtime_turns_total{source="silence"} %d
"""


def test_histogram_delta_quantiles_and_late_frames() -> None:
    before = parse_metrics(METRICS % (10, 10, 10, 10, 10, 1))
    after = parse_metrics(METRICS % (60, 150, 200, 210, 210, 4))
    delta = metric_delta(before, after, "step_realtime_")
    buckets, count, _ = histogram(delta, LAG_METRIC)
    assert count == 200
    assert buckets == [(0.005, 50), (0.05, 140), (0.1, 190), (float("inf"), 200)]
    assert bucket_quantile(buckets, count, 0.5) == 0.05
    assert bucket_quantile(buckets, count, 0.99) == float("inf")
    assert labelled(delta, "step_realtime_turns_total", "source") == {"silence": 3}
    assert not any(k.endswith("_created") for k in delta)


def test_cpu_list() -> None:
    assert cpu_list("0") == [0]
    assert cpu_list("0,2-4") == [0, 2, 3, 4]


def test_profile_summary(tmp_path: Path) -> None:
    raw = tmp_path / "raw.txt"
    raw.write_text(
        "thread (1): MainThread;run (uvicorn/main.py:1);"
        "TurnInput.append (realtime/turns/input.py:258);process (realtime/turns/stages.py:47) 30\n"
        "thread (2): silero-vad_0;_run_rounds (realtime/turns/vad.py:149);"
        "SileroVadModel.infer (realtime/turns/silero.py:85) 70\n"
    )
    summary = summarize_profile(raw)
    assert summary["samples"] == 100
    assert summary["threads_pct"] == {"MainThread": 30.0, "silero-vad_0": 70.0}
    assert summary["stages_pct"]["silero VAD model + rounds"] == 70.0
    assert summary["stages_pct"]["resample (soxr)"] == 30.0
