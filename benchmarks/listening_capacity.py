"""Listening capacity of one gateway core: how many sessions streaming microphone audio in real
time one server core serves, VAD and the end-of-turn decision running, with no input frame
handled more than 100 ms late.

Method. The service (``python -m realtime serve --engine sim --tts simulated``) runs pinned
to one core (``taskset -c SERVER_CPU``, checked on every thread); this benchmark's client runs
on the other core(s), as ``--client-procs`` worker processes. Each of N sessions is a bare
WebSocket (``websockets``, no compression, as ``realtime.client`` connects), sends one
``session.update`` (``output_modalities: ["text"]`` so replies are cheap text;
``--replies none`` sets ``create_response: false`` instead), then streams 24 kHz PCM16 in
20 ms ``input_audio_buffer.append`` frames paced by the wall clock, the sessions' phases
spread evenly over the 20 ms period: a loop of espeak-ng speech with pauses (mid-sentence,
short and long; synthesized once, each session starting at its own offset), so that VAD
turns, candidate pauses and (semantic_vad) Smart Turn calls happen as in a conversation.

What is measured, over a steady window (``--seconds``, after ``--warmup`` seconds):

- the server's own input lateness, ``step_realtime_input_lag_seconds`` at ``GET /metrics``
  (a frame's ``append`` to the VAD and turn decisions having acted on it), as the difference
  of the histogram before and after the window: frames, p50/p99 (bucket upper bounds) and
  frames over 100 ms;
- what that histogram cannot see: the time a frame waits in the socket before the server
  reads it. Two checks: frames handled by the server in the window / frames sent in it, and
  a probe RTT: each session, every ``--probe-interval`` s, sends an event the server answers
  at once (``conversation.item.delete`` of a missing item: an ``error`` event), which it only
  reads after every frame sent before it;
- the client's own send lateness (how far behind the wall-clock schedule a frame left), so
  that a slow client is not taken for a slow server;
- CPU: the server process (all threads, from /proc: user, system, context switches, named
  by ``py-spy dump`` when ``--py-spy`` is given) and the client processes, against wall
  time ("ms CPU/sess-s": server CPU milliseconds per session per second); each core's steal
  time, and the busy time of the server's and the client's cores that is not theirs (other
  processes on the machine);
- Smart Turn calls, scored turns and worker seconds per call
  (``step_realtime_smart_turn_batch_turns`` / ``_call_seconds``), VAD model calls, turns by
  what ended them (``semantic`` vs ``max_silence``), responses, and the lag histogram every
  ``--sample-every`` seconds (does lateness build up or pass?).

A level passes when the server handled no frame over 100 ms late, handled >= 98 % of the
frames sent in the window, the probe RTT p99 is under 100 ms, no session failed, and the
client kept its schedule (send lateness p99 <= 10 ms; if not, the level says CLIENT and more
``--client-procs`` on more ``--client-cpus`` are needed). The sweep stops at the first level
that fails. A failing level during which other processes or steal took more than
``--max-other-load`` of the server's core is run again (``--retries``); a pass despite such
load stands. For semantic_vad the input lag alone does not show whether the end-of-turn
decision kept up (Smart Turn runs on a worker thread, outside the lag): a level also reports
whether Smart Turn's mean worker time per call stayed within ``--max-smart-turn-s``, and the
summary gives the largest N meeting both.

``--py-spy PATH`` names the server's threads (``py-spy dump``), and with ``--profile`` (the
first failing level) or ``--profile-sessions N`` samples the server with py-spy (``record``,
100 Hz; it pauses the server for each sample, so that level's lateness is not comparable)
during the window of one extra level run after the sweep (``--sessions ''``: only that one),
and prints where the server's CPU goes: by thread, by stage, by function, for all threads and
for the event loop alone. py-spy is not a dependency: ``pip install --target DIR py-spy``.

    .venv/bin/python benchmarks/listening_capacity.py --turn-detection semantic_vad \\
        --json /tmp/capacity-semantic.json
    .venv/bin/python benchmarks/listening_capacity.py --turn-detection server_vad \\
        --replies none --sessions 30,35,40 --seconds 20 --json /tmp/capacity-server.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.capacity.config import DEFAULT_LEVELS
from benchmarks.capacity.level import LevelResult, contaminated, run_level
from benchmarks.capacity.load import append_messages, build_loop
from benchmarks.capacity.profile import summarize_profile
from benchmarks.capacity.report import print_detail, print_header, print_profile, print_row
from benchmarks.harness.procfs import cpu_list, thread_affinities, wait_for_quiet
from benchmarks.harness.prometheus import parse_metrics
from benchmarks.harness.service import ServiceProcess


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sessions",
        default=None,
        help="levels, comma separated; the sweep stops at the first failure (default: "
        f"semantic_vad {DEFAULT_LEVELS['semantic_vad']}, server_vad "
        f"{DEFAULT_LEVELS['server_vad']})",
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="measurement window")
    parser.add_argument("--warmup", type=float, default=5.0, help="streaming before the window")
    parser.add_argument("--turn-detection", choices=("semantic_vad", "server_vad"),
                        default="semantic_vad")  # fmt: skip
    parser.add_argument("--replies", choices=("text", "none"), default="text",
                        help="text: responses are created, text only (sim engine); none: "
                        "turn_detection.create_response=false, listening only")  # fmt: skip
    parser.add_argument("--idle-s", type=float, default=0.0,
                        help="extra silence at the end of each loop of speech")  # fmt: skip
    parser.add_argument("--probe-interval", type=float, default=1.0,
                        help="seconds between probe events per session (0: none)")  # fmt: skip
    parser.add_argument("--server-cpu", default="0", help="taskset CPU list of the server")
    parser.add_argument("--client-cpus", default="1", help="CPUs of the client workers")
    parser.add_argument("--client-procs", type=int, default=1, help="client worker processes")
    parser.add_argument("--client-send", choices=("raw", "websockets"), default="raw",
                        help="raw: each frame pre-built and masked once, one transport.write "
                        "per send (handshake, probes and reading still by websockets); "
                        "websockets: ClientConnection.send per frame")  # fmt: skip
    parser.add_argument(
        "--sample-every",
        type=float,
        default=5.0,
        help="seconds between /metrics reads in the window (lag over time)",
    )
    parser.add_argument("--max-other-load", type=float, default=0.10,
                        help="a level during which other processes and steal took more than "
                        "this share of the server's core is run again")  # fmt: skip
    parser.add_argument("--max-smart-turn-s", type=float, default=0.5,
                        help="semantic_vad: Smart Turn keeps up while its mean worker time per "
                        "call (features and model, one batch) is within this")  # fmt: skip
    parser.add_argument("--retries", type=int, default=2,
                        help="re-runs of a level the machine's other load spoiled")  # fmt: skip
    parser.add_argument("--no-stop", action="store_true",
                        help="run every level even after a failure")  # fmt: skip
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra argument for `step-realtime serve` (repeatable)")  # fmt: skip
    parser.add_argument("--py-spy", default=None, help="path of py-spy: profile one level")
    parser.add_argument(
        "--profile-sessions",
        type=int,
        default=None,
        help="with --py-spy: profile this level, after the sweep",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="with --py-spy: profile the first failing level, run again after the sweep",
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="py-spy --native: C frames too (numpy, onnxruntime, the GIL)",
    )
    parser.add_argument("--json", default=None, help="write every figure here")
    parser.add_argument("--log", default=None, help="server log (default: a temp file)")
    args = parser.parse_args()

    sessions = DEFAULT_LEVELS[args.turn_detection] if args.sessions is None else args.sessions
    levels = [int(x) for x in sessions.split(",") if x.strip()]
    client_cpus = set(cpu_list(args.client_cpus))
    os.sched_setaffinity(0, client_cpus)
    loop, loop_info = build_loop(args.idle_s)
    frames = append_messages(loop)
    session_update: dict[str, Any] = {"type": "realtime", "output_modalities": ["text"]}
    if args.replies == "none":
        session_update["audio"] = {"input": {"turn_detection": {"create_response": False}}}
    serve_args = ["--engine", "sim", "--tts", "simulated", "--turn-detection",
                  args.turn_detection, "--log-level", "warning", *args.serve_arg]  # fmt: skip
    log_path = Path(args.log or tempfile.mkstemp(prefix="listening-capacity-", suffix=".log")[1])
    # taskset pins every thread the service ever makes: threads inherit their creator's affinity.
    service = ServiceProcess(
        *serve_args, log_path=log_path, launcher=("taskset", "-c", args.server_cpu)
    )
    service.start(timeout_s=90.0)
    results: list[LevelResult] = []
    profile: dict[str, Any] | None = None
    try:
        affinity = thread_affinities(service.pid)
        print(f"server pid {service.pid}: threads' CPUs {sorted(affinity)} (taskset -c "
              f"{args.server_cpu}); client CPUs {sorted(client_cpus)}, {args.client_procs} "
              f"worker process(es); log {log_path}")  # fmt: skip
        if {tuple(cpu_list(a)) for a in affinity} != {tuple(cpu_list(args.server_cpu))}:
            print("WARNING: the server is not pinned as asked", file=sys.stderr)
        print(f"microphone loop: {loop_info['loop_s']:.1f} s, {loop_info['speech_s']:.1f} s of "
              f"speech, {loop_info['sentences_per_loop']} sentences, "
              f"{loop_info['pauses_per_loop']} pauses; replies: {args.replies}; "
              f"probe every {args.probe_interval:g} s per session")  # fmt: skip
        print_header(args.turn_detection)
        failed_at = None
        for n in levels:
            for attempt in range(args.retries + 1):
                quiet = wait_for_quiet(
                    cpu_list(args.server_cpu) + cpu_list(args.client_cpus),
                    args.max_other_load * 2, timeout_s=60,
                )  # fmt: skip
                result = run_level(service, n, frames, args, session_update)
                result.attempt = attempt + 1
                print_row(result)
                print_detail(result)
                wait_for_sessions_to_close(service)
                # A pass despite other load stands; a failure with other load is run again.
                if result.passed or not contaminated(
                    result, args.max_other_load, cpu_list(args.server_cpu)
                ):
                    break
                load = ", ".join(f"{k} {v:.0%}" for k, v in result.other_load.items())
                steal = ", ".join(f"{k} {v:.0%}" for k, v in result.steal_share.items())
                print(
                    f"       (spoiled by other load: {load}; steal {steal}; before the level "
                    f"the cores were {quiet:.0%} busy"
                    + ("; running it again)" if attempt < args.retries else ")"),
                    flush=True,
                )
            results.append(result)
            if not result.passed:
                failed_at = n
                if not args.no_stop:
                    break
        profile_n = args.profile_sessions or (failed_at if args.profile else None)
        if args.py_spy and profile_n:
            out = Path(tempfile.mkstemp(prefix="listening-capacity-", suffix=".pyspy.txt")[1])
            print(f"\nprofiling the server at N={profile_n} with py-spy -> {out}")
            result = run_level(service, profile_n, frames, args, session_update, profile_out=out)
            print_row(result)
            if out.stat().st_size:
                profile = summarize_profile(out)
                profile["sessions"] = profile_n
                profile["raw"] = str(out)
                result.profile = profile
                print_profile(profile)
            wait_for_sessions_to_close(service)
    finally:
        service.stop(timeout_s=15.0)

    passing = [r for r in results if r.passed]
    best = max(passing, key=lambda r: r.sessions) if passing else None
    print()
    if best is not None:
        print(f"{args.turn_detection}: largest N with no frame over 100 ms: {best.sessions} "
              f"(lag p99 <= {best.lag_p99_ms:.0f} ms, probe RTT p99 {best.probe_rtt_ms['p99']:.1f}"
              f" ms; server CPU {best.server_cpu_share:.0%} of its core, client "
              f"{best.client_cpu_share:.0%} of its core)")  # fmt: skip
    else:
        print(f"{args.turn_detection}: no level passed")
    if args.turn_detection == "semantic_vad":
        keeping_up = [r for r in passing if r.eot_ok]
        eot_best = max(keeping_up, key=lambda r: r.sessions) if keeping_up else None
        print(f"semantic_vad: largest N with no frame over 100 ms and Smart Turn answering "
              f"within {args.max_smart_turn_s:g} s per call on average: "
              f"{eot_best.sessions if eot_best else 'none'}")  # fmt: skip
    if args.json:
        payload = {
            "turn_detection": args.turn_detection,
            "replies": args.replies,
            "loop": loop_info,
            "serve_args": serve_args,
            "server_cpu": args.server_cpu,
            "client_cpus": sorted(client_cpus),
            "client_procs": args.client_procs,
            "seconds": args.seconds,
            "warmup": args.warmup,
            "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
            "best_sessions": best.sessions if best else None,
            "best_sessions_smart_turn_keeping_up": (
                max((r.sessions for r in passing if r.eot_ok), default=None)
                if args.turn_detection == "semantic_vad"
                else None
            ),
            "levels": [asdict(r) for r in results],
            "profile": profile,
        }
        Path(args.json).write_text(json.dumps(payload, indent=1, default=str))
        print(f"wrote {args.json}")
    return 0


def wait_for_sessions_to_close(service: ServiceProcess, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        active = sum(
            v for k, v in parse_metrics(service.metrics(timeout_s=30.0)).items()
            if k.startswith("step_realtime_sessions_active")
        )  # fmt: skip
        if active == 0:
            return
        time.sleep(0.5)
    print(f"WARNING: sessions still open on the server after {timeout_s:.0f} s", file=sys.stderr)


if __name__ == "__main__":
    sys.exit(main())
