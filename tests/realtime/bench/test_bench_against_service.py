"""``step-realtime bench`` against the real service (echo engine) on 127.0.0.1, in-process."""

from __future__ import annotations

import json
import socket
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest

from benchmarks.harness.ports import free_port
from benchmarks.harness.service import ServiceProcess
from realtime.bench.metrics import CLIENT_METRICS
from tests.realtime.bench.conftest import BenchRun, run_bench, short_audio_args

pytestmark = pytest.mark.slow  # runs the bench against the real service

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
ALWAYS_MEASURED = (
    "first_packet_ms",
    "full_reply_ms",
    "reply_audio_ms",
    "endpoint_ms",
    "gateway_overhead_ms",
)


@dataclass(frozen=True)
class RunFiles:
    run: BenchRun
    results: Path
    plots: Path

    def data(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.results.read_text())
        return loaded


def _run_to(directory: Path, *argv: str) -> RunFiles:
    results, plots = directory / "results.json", directory / "plots"
    run = run_bench(*argv, "--out", str(results), "--plot", str(plots))
    return RunFiles(run, results, plots)


@pytest.fixture(scope="module")
def sweep(
    bench_service: ServiceProcess, audio_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunFiles:
    return _run_to(
        tmp_path_factory.mktemp("sweep"),
        "--url", bench_service.ws_url, "--sessions", "1,2", "--turns", "1",
        *short_audio_args(audio_cache),
    )  # fmt: skip


@pytest.fixture(scope="module")
def barge_in(
    bench_service: ServiceProcess, audio_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> RunFiles:
    return _run_to(
        tmp_path_factory.mktemp("barge-in"),
        "--url", bench_service.ws_url, "--sessions", "1", "--turns", "1",
        "--barge-in", "--barge-in-after-ms", "200", *short_audio_args(audio_cache),
    )  # fmt: skip


def test_a_sweep_reports_every_metric_with_p50_p90_p99_and_max(sweep: RunFiles) -> None:
    assert sweep.run.exit_code == 0, sweep.run.stderr
    data = sweep.data()
    assert [level["sessions"] for level in data["levels"]] == [1, 2]
    for level in data["levels"]:
        metrics = level["summary"]["metrics"]
        assert set(metrics) == {metric.name for metric in CLIENT_METRICS}
        for name in ALWAYS_MEASURED:
            stats = metrics[name]
            assert stats["count"] == level["sessions"], name
            assert stats["p50"] <= stats["p90"] <= stats["p99"] <= stats["max"], name
        assert metrics["barge_in_stop_ms"]["count"] == 0  # no barge-in in this run
        stages = level["summary"]["stages"]
        for stage in ("response_created", "first_reply_text", "first_audio_sent", "engine_ms"):
            assert stages[stage]["count"] == level["sessions"], stage
    assert "first-packet latency" in sweep.run.stdout
    assert "latency against concurrency" in sweep.run.stdout  # the sweep's own table


def test_the_results_keep_every_raw_sample_consistent_with_its_summary(sweep: RunFiles) -> None:
    for level in sweep.data()["levels"]:
        samples = level["samples"]
        assert sorted(sample["session"] for sample in samples) == list(range(level["sessions"]))
        for sample in samples:
            assert sample["status"] == "completed"
            assert sample["engine"] == "echo" and sample["simulated"] is False
            assert sample["reply_text"].startswith("You said:")
            # The reply cannot start before the server's VAD has heard the silence window.
            assert sample["first_packet_ms"] > sample["silence_window_ms"]
            assert sample["full_reply_ms"] > sample["first_packet_ms"]
            stages = sample["stages_ms"]
            engine = stages["first_reply_text"] - stages["engine_request_sent"]
            tts = stages["first_tts_audio"] - stages["first_reply_text"]
            assert sample["gateway_overhead_ms"] == pytest.approx(
                sample["first_packet_ms"] - sample["silence_window_ms"] - engine - tts
            )
        first_packets = [sample["first_packet_ms"] for sample in samples]
        summary = level["summary"]["metrics"]["first_packet_ms"]
        assert summary["max"] == pytest.approx(max(first_packets))
        assert summary["min"] == pytest.approx(min(first_packets))


def test_the_results_record_the_context_of_the_run(
    sweep: RunFiles, bench_service: ServiceProcess
) -> None:
    context = sweep.data()["context"]
    assert context["url"] == bench_service.ws_url
    assert context["transport"] == "websocket"
    server = context["server"]
    assert (server["engine"], server["model"], server["tts"]) == (
        "echo", "echo-pocketsphinx", "espeak-ng",
    )  # fmt: skip
    assert context["simulated"] is False
    assert context["policies"] == ["after-think"]
    assert context["client"]["host"] == socket.gethostname()
    assert context["session_levels"] == [1, 2]
    assert context["turns_per_session"] == 1
    head = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True)
    assert context["git_revision"] == (head.stdout.strip() if head.returncode == 0 else "unknown")
    started = datetime.fromisoformat(context["started_at"])
    assert started <= datetime.fromisoformat(context["finished_at"])


def test_the_plots_are_written_as_png_charts(sweep: RunFiles) -> None:
    expected = {
        "cdf_first_packet_ms.png",
        "cdf_full_reply_ms.png",
        "cdf_gateway_overhead_ms.png",
        "waterfall_1_sessions.png",
        "waterfall_2_sessions.png",
        "latency_vs_concurrency.png",
    }
    written = {path.name for path in sweep.plots.iterdir()}
    assert expected <= written
    assert "cdf_barge_in_stop_ms.png" not in written  # no data, no chart
    for name in expected:
        path = sweep.plots / name
        assert path.read_bytes()[:8] == PNG_SIGNATURE
        height, width, _ = matplotlib.image.imread(path).shape
        assert height > 200 and width > 400


def test_a_barge_in_turn_records_its_stop_time_and_a_cancelled_reply(barge_in: RunFiles) -> None:
    assert barge_in.run.exit_code == 0, barge_in.run.stderr
    (level,) = barge_in.data()["levels"]
    interrupted, answer = level["samples"]
    assert (interrupted["kind"], answer["kind"]) == ("barge_in", "after_barge_in")
    assert interrupted["status"] == "cancelled"
    assert interrupted["first_packet_ms"] is not None
    assert interrupted["barge_in_stop_ms"] is not None and interrupted["barge_in_stop_ms"] >= 0
    assert interrupted["full_reply_ms"] is None  # the reply never finished
    assert answer["status"] == "completed" and answer["reply_text"].startswith("You said:")
    counts = level["summary"]["counts"]
    assert (counts["barge_ins"], counts["barge_ins_missed"], counts["cancelled"]) == (1, 0, 1)
    assert level["summary"]["metrics"]["barge_in_stop_ms"]["count"] == 1
    assert (barge_in.plots / "cdf_barge_in_stop_ms.png").exists()


def test_compare_prints_the_differences_and_ratios_of_two_runs(
    sweep: RunFiles, barge_in: RunFiles
) -> None:
    run = run_bench("compare", str(sweep.results), str(barge_in.results))

    assert run.exit_code == 0, run.stderr
    a = sweep.data()["levels"][0]["summary"]["metrics"]["first_packet_ms"]["p50"]
    b = barge_in.data()["levels"][0]["summary"]["metrics"]["first_packet_ms"]["p50"]
    row = next(line for line in run.stdout.splitlines() if "first-packet latency" in line)
    assert f"{b / a:.2f}x" in row
    assert f"{b - a:+.0f}" in row
    assert "levels only in a (not compared): [2]" in run.stdout
    assert "barge-in differs" in run.stdout


def test_compare_rejects_a_file_that_is_not_a_bench_result(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": "world"}')

    run = run_bench("compare", str(bogus), str(bogus))

    assert run.exit_code == 2
    assert "not a step-realtime bench results file" in run.stderr


def test_an_unreachable_service_fails_with_a_clear_message(audio_cache: Path) -> None:
    url = f"ws://127.0.0.1:{free_port()}/v1/realtime"  # nothing listens there

    run = run_bench("--url", url, *short_audio_args(audio_cache))

    assert run.exit_code == 2
    assert "cannot reach the service" in run.stderr
    assert url.split("/v1")[0].replace("ws://", "http://") in run.stderr


def test_a_webrtc_run_measures_the_same_metrics(
    bench_service: ServiceProcess, audio_cache: Path, tmp_path: Path
) -> None:
    results = tmp_path / "webrtc.json"

    run = run_bench(
        "--url", bench_service.ws_url, "--transport", "webrtc", "--sessions", "1",
        "--turns", "1", *short_audio_args(audio_cache), "--out", str(results),
    )  # fmt: skip

    assert run.exit_code == 0, run.stderr
    data = json.loads(results.read_text())
    assert data["context"]["transport"] == "webrtc"
    (sample,) = data["levels"][0]["samples"]
    assert sample["status"] == "completed"
    assert sample["first_packet_ms"] > sample["silence_window_ms"]
    assert sample["reply_audio_ms"] > 1000.0
    assert sample["gateway_overhead_ms"] is not None


def test_a_service_that_opens_no_session_is_a_clear_failure(
    bench_service: ServiceProcess, audio_cache: Path
) -> None:
    wrong_path = bench_service.ws_url.replace("/v1/realtime", "/elsewhere/v1/realtime")

    run = run_bench("--url", wrong_path, "--sessions", "1,2", *short_audio_args(audio_cache))

    assert run.exit_code == 2
    assert "no session could be opened" in run.stderr
    assert "elsewhere" in run.stderr
