"""Soak: many sessions holding continuous spoken conversations for a long time, watching the
service for leaks and for latency that drifts.

The service (``--engine sim --tts simulated``: the engine's timings and the first TTS chunk
are SIMULATED; VAD, turn-taking, the TTS's espeak-ng audio, pacing and both transports' code
are real) runs on 127.0.0.1. Each of ``--sessions`` WebSocket sessions (the SDK's
``RealtimeClient``) talks without a break: an espeak-ng utterance streamed in real time, then
silence until the reply is done, then the next utterance, until ``--minutes`` have passed.
Every ``--sample-s`` seconds the benchmark samples the service process: RSS and threads from
/proc, open file descriptors, and live asyncio tasks (``step_realtime_asyncio_tasks`` at
``/metrics``).

Targets (issue 12): RSS growth under 10 % from minute 2 to the end; fds and tasks flat; the
first-packet p99 of the last minute within 1.2x that of the second minute.

    .venv/bin/python benchmarks/soak.py                    # 50 sessions, 10 minutes
    .venv/bin/python benchmarks/soak.py --minutes 60       # the same, for an hour
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.procfs import memory_fds_threads
from benchmarks.harness.prometheus import MetricsSnapshot
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.stats import percentile
from realtime.client import RealtimeClient, speak_turn

RATE = 24_000
SENTENCES = (
    "Hello there, how are you doing today?",
    "What is the weather like in Paris?",
    "Please tell me a short story about a dog.",
    "Can you remind me to buy some milk?",
)


@dataclass
class Sample:
    at_s: float
    rss_mb: float
    fds: int
    threads: int
    tasks: float
    sessions: float


@dataclass
class Run:
    started: float = field(default_factory=time.monotonic)
    turns: list[tuple[float, float]] = field(default_factory=list)  # (at_s, first packet ms)
    failures: list[str] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)


async def converse(service: ServiceProcess, utterances: list[np.ndarray], index: int,
                   run: Run, deadline: float) -> None:  # fmt: skip
    turn_index = index
    while time.monotonic() < deadline:
        try:
            async with RealtimeClient.connect(service.ws_url, open_timeout=30) as client:
                while time.monotonic() < deadline:
                    pcm = utterances[turn_index % len(utterances)]
                    turn_index += 1
                    turn = await speak_turn(client, pcm, RATE, timeout=60)
                    latency = turn.first_packet_latency_ms
                    if latency is not None:
                        run.turns.append((time.monotonic() - run.started, latency))
        except Exception as exc:  # counted and reported; the session reconnects
            run.failures.append(f"session {index}: {type(exc).__name__}: {exc}")
            await asyncio.sleep(1.0)


async def sample_service(service: ServiceProcess, run: Run, every_s: float,
                         deadline: float) -> None:  # fmt: skip
    async with httpx.AsyncClient(timeout=10) as http:
        while time.monotonic() < deadline:
            text = (await http.get(f"{service.http_url}/metrics")).text
            rss_mb, fds, threads = memory_fds_threads(service.pid)
            metrics = MetricsSnapshot.parse(text)
            run.samples.append(Sample(
                time.monotonic() - run.started, rss_mb, fds, threads,
                metrics.value("step_realtime_asyncio_tasks", float("nan")),
                metrics.value("step_realtime_sessions_active", 0.0),
            ))  # fmt: skip
            await asyncio.sleep(every_s)


def p99(values: list[float]) -> float:
    return percentile(values, 99)


def window(run: Run, start_s: float, end_s: float) -> list[float]:
    return [ms for at, ms in run.turns if start_s <= at < end_s]


def report(run: Run, minutes: float) -> None:
    print("\nSOAK (engine and first TTS chunk SIMULATED: --engine sim --tts simulated)")
    print(f"{'t (s)':>7} {'RSS MB':>8} {'fds':>5} {'threads':>8} {'tasks':>6} {'sessions':>9}")
    for s in run.samples:
        print(f"{s.at_s:7.0f} {s.rss_mb:8.1f} {s.fds:5d} {s.threads:8d} {s.tasks:6.0f} "
              f"{s.sessions:9.0f}")  # fmt: skip
    after_2 = [s for s in run.samples if s.at_s >= 120] or run.samples
    first, last = after_2[0], run.samples[-1]
    growth = 100.0 * (last.rss_mb - first.rss_mb) / first.rss_mb
    end_s = minutes * 60
    second = window(run, 60, 120)
    final = window(run, end_s - 60, end_s + 1)
    print(f"\nturns: {len(run.turns)}; failures: {len(run.failures)}")
    for failure in run.failures[:10]:
        print("  " + failure)
    print(f"RSS from minute 2 to the end: {first.rss_mb:.1f} -> {last.rss_mb:.1f} MB "
          f"({growth:+.1f} %; target < 10 %)")  # fmt: skip
    print(f"fds: {first.fds} -> {last.fds}; threads: {first.threads} -> {last.threads}; "
          f"asyncio tasks: {first.tasks:.0f} -> {last.tasks:.0f} (target: flat)")  # fmt: skip
    ratio = p99(final) / p99(second)
    print(f"first packet p99: minute 2 {p99(second):.0f} ms ({len(second)} turns), last minute "
          f"{p99(final):.0f} ms ({len(final)} turns): {ratio:.2f}x (target <= 1.2x)")  # fmt: skip
    if second and final:
        print(f"first packet median: minute 2 {statistics.median(second):.0f} ms, last minute "
              f"{statistics.median(final):.0f} ms")  # fmt: skip


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-s", type=float, default=10.0)
    parser.add_argument("--turn-detection", default="server_vad",
                        choices=["server_vad", "semantic_vad"])  # fmt: skip
    args = parser.parse_args()
    utterances = [synthesize(sentence, RATE) for sentence in SENTENCES]
    log = Path(tempfile.mkdtemp(prefix="soak-")) / "serve.log"
    service = ServiceProcess(
        "--engine", "sim", "--tts", "simulated", "--turn-detection", args.turn_detection,
        # Short simulated reasoning: a conversational pace, many turns a minute.
        "--sim-reasoning-tokens", "20", "--sim-answer-tokens", "30",
        "--max-sessions", str(args.sessions + 10), log_path=log,
    )  # fmt: skip
    run = Run()
    with service:
        run.started = time.monotonic()
        deadline = run.started + 60 * args.minutes
        print(f"{args.sessions} sessions for {args.minutes:g} min ({args.turn_detection}); "
              f"service log {log}", flush=True)  # fmt: skip
        sessions = [converse(service, utterances, i, run, deadline) for i in range(args.sessions)]
        await asyncio.gather(sample_service(service, run, args.sample_s, deadline), *sessions)
    report(run, args.minutes)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
