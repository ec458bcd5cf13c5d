"""The benchmarks' shared harness: percentiles, /metrics samples and /proc readings."""

from __future__ import annotations

import math
import os

import pytest

from benchmarks.harness.procfs import memory_fds_threads, thread_stats
from benchmarks.harness.prometheus import MetricsSnapshot
from benchmarks.harness.stats import percentile

METRICS = """\
# HELP step_realtime_sessions_active Connected sessions
# TYPE step_realtime_sessions_active gauge
step_realtime_sessions_active{transport="websocket"} 3.0
step_realtime_sessions_active{transport="webrtc"} 2.0
# HELP step_realtime_asyncio_tasks Tasks alive on the event loop
# TYPE step_realtime_asyncio_tasks gauge
step_realtime_asyncio_tasks 41.0
"""


def test_percentile_of_samples_and_of_none() -> None:
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0], 100) == 5.0
    assert math.isnan(percentile([], 99))


def test_a_metric_sums_its_labelled_samples_or_gives_the_default() -> None:
    metrics = MetricsSnapshot.parse(METRICS)

    assert metrics.value("step_realtime_sessions_active") == 5.0
    assert metrics.value("step_realtime_sessions_active", transport="webrtc") == 2.0
    assert metrics.value("step_realtime_asyncio_tasks") == 41.0
    assert metrics.value("step_realtime_sessions_refused_total", 0.0) == 0.0
    with pytest.raises(KeyError):
        metrics.value("step_realtime_sessions_refused_total")


def test_proc_readings_of_this_process() -> None:
    rss_mb, fds, threads = memory_fds_threads(os.getpid())
    per_thread = thread_stats(os.getpid())

    assert rss_mb > 1.0
    assert fds >= 3  # stdin, stdout, stderr at least
    assert threads >= 1
    assert os.getpid() in per_thread
    user_s, system_s, switches = per_thread[os.getpid()]
    assert user_s > 0.0 and system_s >= 0.0 and switches > 0
