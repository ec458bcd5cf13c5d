"""One level of the sweep: N sessions streamed through a warm-up and a window, the server's
lag histogram, /proc CPU, probes and client lateness measured, and the pass/fail verdict."""

from __future__ import annotations

import argparse
import itertools
import multiprocessing as mp
import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.capacity.config import (
    CLIENT_LATE_P99_LIMIT_S,
    HANDLED_MIN_RATIO,
    LAG_METRIC,
    LATE_LIMIT_S,
)
from benchmarks.capacity.load import WorkerPlan, worker_entry
from benchmarks.harness.procfs import (
    core_times,
    cpu_list,
    process_cpu_s,
    thread_names,
    thread_stats,
    tree_cpu_s,
)
from benchmarks.harness.prometheus import (
    bucket_quantile,
    histogram,
    labelled,
    metric_delta,
    parse_metrics,
)
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.stats import percentile


@dataclass
class LevelResult:
    sessions: int
    connected: int
    window_s: float
    frames_handled: int
    frames_sent: int
    handled_ratio: float
    lag_p50_ms: float
    lag_p99_ms: float
    lag_max_bucket_ms: float
    frames_over_100ms: int
    lag_buckets: list[tuple[float, int]]
    probe_rtt_ms: dict[str, float]
    probes_unanswered: int
    client_late_ms: dict[str, float]
    client_late_over_5ms: int
    client_late_over_20ms: int
    client_max_write_buffer_bytes: int
    server_cpu_share: float
    server_threads_share: dict[str, float]
    server_threads: dict[str, dict[str, float]]
    """Per thread: CPU, user and system shares of wall time, context switches per second."""
    client_cpu_share: float
    client_procs: int
    steal_share: dict[str, float]
    other_load: dict[str, float]
    """Busy time of the server's and the client's cores not spent by them (other tenants of
    the machine, and interrupt work), as a share of wall time."""
    intervals: list[dict[str, float]]
    smart_turn_calls: int
    smart_turn_turns: int
    smart_turn_worker_s: float
    vad_model_calls: int
    vad_chunks: int
    turns: dict[str, float]
    responses: dict[str, float]
    server_errors: dict[str, float]
    client_events: dict[str, int]
    client_errors: dict[str, int]
    closed_early: int
    connect_failures: int
    passed: bool = False
    """No input frame late (the sweep's criterion); see ``judge``."""
    eot_ok: bool = True
    """semantic_vad: Smart Turn kept up (mean worker time per call within the limit)."""
    client_ok: bool = False
    reasons: list[str] = field(default_factory=list)
    profile: dict[str, Any] | None = None
    attempt: int = 1


def run_level(
    service: ServiceProcess,
    sessions: int,
    frames: list[str],
    args: argparse.Namespace,
    session_update: dict[str, Any],
    profile_out: Path | None = None,
) -> LevelResult:
    ctx = mp.get_context("spawn")
    cpus = cpu_list(args.client_cpus)
    procs = max(1, min(args.client_procs, sessions))
    workers = []
    for w in range(procs):
        plan = WorkerPlan(
            url=service.ws_url,
            indices=list(range(w, sessions, procs)),
            total_sessions=sessions,
            session_update=session_update,
            probe_interval_s=args.probe_interval,
            cpu=cpus[w % len(cpus)],
            raw_send=args.client_send == "raw",
        )
        parent_end, child_end = ctx.Pipe()
        process = ctx.Process(target=worker_entry, args=(plan, frames, child_end), daemon=True)
        process.start()
        workers.append((process, parent_end))
    try:
        connected = 0
        for _process, pipe in workers:
            if not pipe.poll(180):
                raise TimeoutError("a client worker did not get its sessions ready in 180 s")
            _kind, count = pipe.recv()
            connected += count
        t0 = time.monotonic() + 0.5
        tail_s = 1.0
        for _, pipe in workers:
            pipe.send(("go", t0, args.warmup, args.seconds, tail_s))

        def snapshot() -> tuple[float, float, dict, float, dict, dict[str, float]]:
            now = time.monotonic()
            client = sum(os.times()[:2])  # this orchestrating process
            for process, _ in workers:
                assert process.pid is not None
                client += process_cpu_s(process.pid, with_children=False)
            return (
                now, tree_cpu_s(service.pid), thread_stats(service.pid), client, core_times(),
                parse_metrics(service.metrics(timeout_s=30.0)),
            )  # fmt: skip

        time.sleep(max(0.0, t0 + args.warmup - time.monotonic()))
        before = snapshot()
        profiler = None
        if profile_out is not None:
            profiler = subprocess.Popen(
                [args.py_spy, "record", "--pid", str(service.pid), "--threads", "--rate", "100",
                 "--duration", str(int(args.seconds)), "--format", "raw",
                 *(["--native"] if args.profile_native else []),
                 "--output", str(profile_out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
            )  # fmt: skip
        series: list[tuple[float, dict[str, float]]] = [(before[0], before[5])]
        window_end = t0 + args.warmup + args.seconds
        while (next_at := series[-1][0] + args.sample_every) < window_end - 0.5:
            time.sleep(max(0.0, next_at - time.monotonic()))
            series.append((time.monotonic(), parse_metrics(service.metrics(timeout_s=30.0))))
        time.sleep(max(0.0, window_end - time.monotonic()))
        after = snapshot()
        series.append((after[0], after[5]))
        if profiler is not None:
            profiler.wait(timeout=args.seconds + 30)

        reports = []
        for process, pipe in workers:
            if not pipe.poll(120):
                raise TimeoutError("a client worker did not report")
            _kind, report = pipe.recv()
            reports.append(report)
            process.join(30)
    finally:
        for process, _ in workers:
            if process.is_alive():
                process.kill()
                process.join(5)

    wall = after[0] - before[0]
    delta = metric_delta(before[5], after[5], "step_realtime_")
    buckets, count, _ = histogram(delta, LAG_METRIC)
    le_100 = next((c for b, c in buckets if abs(b - LATE_LIMIT_S) < 1e-9), 0.0)
    finite = [(b, c) for b, c in buckets if b != float("inf")]
    nonempty_bounds = (
        []
        if not buckets
        else [
            b
            for (b, c), (_, prev) in zip(buckets, [(0, 0.0), *buckets[:-1]], strict=True)
            if c > prev
        ]
    )
    _, st_calls, st_turns = histogram(delta, "step_realtime_smart_turn_batch_turns")
    _, _, st_seconds = histogram(delta, "step_realtime_smart_turn_call_seconds")
    _, vad_calls, vad_chunks = histogram(delta, "step_realtime_vad_batch_chunks")
    names = thread_names(service.pid, args.py_spy)
    thread_detail: dict[str, dict[str, float]] = {}
    for tid, (user, system, switches) in after[2].items():
        user0, system0, switches0 = before[2].get(tid, (0.0, 0.0, 0))
        if user + system - user0 - system0 <= 0:
            continue
        thread_detail[names.get(tid, f"thread {tid}")] = {
            "cpu": (user + system - user0 - system0) / wall,
            "user": (user - user0) / wall,
            "sys": (system - system0) / wall,
            "switches_per_s": (switches - switches0) / wall,
        }
    thread_detail = dict(sorted(thread_detail.items(), key=lambda kv: -kv[1]["cpu"]))
    threads = {name: d["cpu"] for name, d in thread_detail.items()}
    steal = {core: (after[4][core]["steal"] - before[4][core]["steal"]) / wall for core in after[4]}
    busy = {core: (after[4][core]["busy"] - before[4][core]["busy"]) / wall for core in after[4]}
    server_cores = [f"cpu{c}" for c in cpu_list(args.server_cpu)]
    client_cores = [f"cpu{c}" for c in cpu_list(args.client_cpus)]
    server_share = (after[1] - before[1]) / wall
    client_share = (after[3] - before[3]) / wall
    other_load = {
        "server cores": sum(busy.get(c, 0.0) for c in server_cores) - server_share,
        "client cores": sum(busy.get(c, 0.0) for c in client_cores) - client_share,
    }
    intervals = []
    for (t_a, m_a), (t_b, m_b) in itertools.pairwise(series):
        d = metric_delta(m_a, m_b, "step_realtime_")
        b, n, _ = histogram(d, LAG_METRIC)
        le = next((c for bound, c in b if abs(bound - LATE_LIMIT_S) < 1e-9), 0.0)
        _, calls, _ = histogram(d, "step_realtime_vad_batch_chunks")
        intervals.append({
            "t_s": round(t_b - before[0], 1),
            "frames": int(n),
            "p50_ms": bucket_quantile(b, n, 0.5) * 1e3,
            "p99_ms": bucket_quantile(b, n, 0.99) * 1e3,
            "over_100ms": int(n - le),
            "vad_calls_per_s": calls / (t_b - t_a),
        })  # fmt: skip
    sent = sum(r["frames_sent_window"] for r in reports)
    rtts = sorted(x for r in reports for x in r["probe_rtts_ms"])
    late_sample = np.asarray([x for r in reports for x in r["lateness_sample"]] or [0.0])
    events: Counter[str] = Counter()
    client_errors: Counter[str] = Counter()
    for r in reports:
        events.update(r["events"])
        client_errors.update(r["errors"])

    result = LevelResult(
        sessions=sessions,
        connected=connected,
        window_s=wall,
        frames_handled=int(count),
        frames_sent=sent,
        handled_ratio=count / sent if sent else float("nan"),
        lag_p50_ms=bucket_quantile(buckets, count, 0.50) * 1e3,
        lag_p99_ms=bucket_quantile(buckets, count, 0.99) * 1e3,
        lag_max_bucket_ms=(max(nonempty_bounds) * 1e3) if nonempty_bounds else float("nan"),
        frames_over_100ms=int(count - le_100),
        lag_buckets=[(b, int(c)) for b, c in finite] + [(float("inf"), int(count))],
        probe_rtt_ms={
            "n": len(rtts),
            "p50": percentile(rtts, 50),
            "p99": percentile(rtts, 99),
            "max": max(rtts) if rtts else float("nan"),
        },
        probes_unanswered=sum(r["probes_unanswered"] for r in reports),
        client_late_ms={
            "p50": float(np.percentile(late_sample, 50) * 1e3),
            "p99": float(np.percentile(late_sample, 99) * 1e3),
            "max": max(r["lateness_ms"]["max"] for r in reports),
        },
        client_late_over_5ms=sum(r["late_over_5ms"] for r in reports),
        client_late_over_20ms=sum(r["late_over_20ms"] for r in reports),
        client_max_write_buffer_bytes=max(r["max_write_buffer_bytes"] for r in reports),
        server_cpu_share=server_share,
        server_threads_share=threads,
        server_threads=thread_detail,
        client_cpu_share=client_share,
        other_load=other_load,
        intervals=intervals,
        client_procs=len(workers),
        steal_share=steal,
        smart_turn_calls=int(st_calls),
        smart_turn_turns=int(st_turns),
        smart_turn_worker_s=st_seconds,
        vad_model_calls=int(vad_calls),
        vad_chunks=int(vad_chunks),
        turns=labelled(delta, "step_realtime_turns_total", "source"),
        responses=labelled(delta, "step_realtime_responses_total", "status"),
        server_errors=labelled(delta, "step_realtime_errors_total", "code"),
        client_events=dict(events.most_common()),
        client_errors=dict(client_errors),
        closed_early=sum(r["closed_early"] for r in reports),
        connect_failures=sum(len(r["connect_failures"]) for r in reports),
    )
    judge(result, args.max_smart_turn_s)
    return result


def smart_turn_s_per_call(r: LevelResult) -> float:
    return r.smart_turn_worker_s / r.smart_turn_calls if r.smart_turn_calls else 0.0


def judge(r: LevelResult, smart_turn_limit_s: float) -> None:
    """``passed``: the input side kept up. ``eot_ok``: so did the end-of-turn model (its
    answers come from a worker thread on the same core, outside the input lag: when the core
    is short, they come late, the pause is over or the longest silence ends the turn)."""
    r.eot_ok = smart_turn_s_per_call(r) <= smart_turn_limit_s
    reasons = []
    if r.frames_over_100ms:
        reasons.append(f"{r.frames_over_100ms} frames handled > 100 ms late")
    if not r.handled_ratio >= HANDLED_MIN_RATIO:
        reasons.append(f"server handled {r.handled_ratio:.1%} of the frames sent in the window")
    if not r.probe_rtt_ms["p99"] < LATE_LIMIT_S * 1e3 or r.probes_unanswered:
        reasons.append(
            f"probe RTT p99 {r.probe_rtt_ms['p99']:.0f} ms, {r.probes_unanswered} unanswered"
        )
    if r.connect_failures or r.closed_early or r.connected < r.sessions:
        reasons.append(f"{r.sessions - r.connected} not connected, {r.closed_early} closed early")
    r.client_ok = r.client_late_ms["p99"] <= CLIENT_LATE_P99_LIMIT_S * 1e3
    if not r.client_ok:
        late = r.client_late_ms["p99"]
        reasons.append(f"CLIENT behind its schedule (send lateness p99 {late:.1f} ms)")
    r.passed = not reasons
    r.reasons = reasons


def contaminated(r: LevelResult, limit: float, server_cores: list[int]) -> bool:
    """Other processes, or the hypervisor (steal), took more than ``limit`` of the server's
    core(s); or the client fell behind while others loaded its core(s)."""
    steal = sum(r.steal_share.get(f"cpu{c}", 0.0) for c in server_cores)
    if r.other_load["server cores"] + steal > limit:
        return True
    return not r.client_ok and r.other_load["client cores"] > limit
