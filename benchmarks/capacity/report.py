"""The printed figures of a level, its details and the profile summary."""

from __future__ import annotations

from typing import Any

from benchmarks.capacity.level import LevelResult, smart_turn_s_per_call


def print_header(mode: str) -> None:
    print(f"\n{mode}: 20 ms frames, window stats (lag = server input lag histogram; "
          "p50/p99 are bucket upper bounds)")  # fmt: skip
    print(
        f"{'N':>4} {'frames':>7} {'handled':>7} {'lag p50':>7} {'p99':>6} {'>100ms':>6} | "
        f"{'ms CPU/sess-s':>13} | "
        f"{'probe p50':>9} {'p99':>6} | {'srv CPU':>7} {'loop':>5} {'cli CPU':>7} "
        f"{'cli late p99':>12} {'max':>6} | {'ST calls':>8} {'ST turns':>8} {'s/call':>6} "
        f"{'turns':>5} {'semantic':>8} "
        f"{'resp':>5} | verdict"
    )


def print_row(r: LevelResult) -> None:
    loop = r.server_threads_share.get("main (event loop)", 0.0)
    verdict = "PASS" if r.passed else ("FAIL: " + "; ".join(r.reasons))
    if not r.eot_ok:
        verdict += f" (Smart Turn behind: {smart_turn_s_per_call(r):.2f} s per call)"
    print(
        f"{r.sessions:>4} {r.frames_handled:>7} {r.handled_ratio:>7.1%} {r.lag_p50_ms:>7.0f} "
        f"{r.lag_p99_ms:>6.0f} {r.frames_over_100ms:>6} | "
        f"{1e3 * r.server_cpu_share / max(1, r.connected):>13.1f} | {r.probe_rtt_ms['p50']:>9.1f} "
        f"{r.probe_rtt_ms['p99']:>6.1f} | {r.server_cpu_share:>7.0%} {loop:>5.0%} "
        f"{r.client_cpu_share:>7.0%} {r.client_late_ms['p99']:>12.2f} "
        f"{r.client_late_ms['max']:>6.1f} | {r.smart_turn_calls:>8} {r.smart_turn_turns:>8} "
        f"{smart_turn_s_per_call(r):>6.2f} "
        f"{int(sum(r.turns.values())):>5} {int(r.turns.get('semantic', 0)):>8} "
        f"{int(sum(r.responses.values())):>5} | {verdict}",
        flush=True,
    )


def print_detail(r: LevelResult) -> None:
    threads = ", ".join(
        f"{k} {d['cpu']:.0%} (sys {d['sys']:.0%}, {d['switches_per_s']:.0f} switches/s)"
        for k, d in list(r.server_threads.items())[:4]
    )
    print(f"       server threads: {threads}; steal: "
          + ", ".join(f"{k} {v:.1%}" for k, v in r.steal_share.items()))  # fmt: skip
    bounds = ", ".join(f"{b * 1e3:g}:{c}" for b, c in r.lag_buckets if b != float("inf"))
    print(f"       lag buckets (le ms: cumulative): {bounds}")
    print(f"       turns {r.turns}, responses {r.responses}, Smart Turn worker "
          f"{r.smart_turn_worker_s:.1f} s, VAD calls {r.vad_model_calls} "
          f"({r.vad_chunks} chunks); server errors {r.server_errors}")  # fmt: skip
    print(f"       other load: server core {r.other_load['server cores']:.0%}, client core "
          f"{r.other_load['client cores']:.0%}; lag over the window (p50/p99 ms, >100 ms, VAD "
          "calls/s): " + ", ".join(
              f"[{i['t_s']:g}s {i['p50_ms']:g}/{i['p99_ms']:g}, {i['over_100ms']}, "
              f"{i['vad_calls_per_s']:.0f}]" for i in r.intervals))  # fmt: skip
    print(f"       client: {r.client_procs} process(es), send lateness p50 "
          f"{r.client_late_ms['p50']:.2f} ms, {r.client_late_over_20ms} sends > 20 ms late, "
          f"largest unsent backlog {r.client_max_write_buffer_bytes} B; probes "
          f"{r.probe_rtt_ms['n']} (max {r.probe_rtt_ms['max']:.0f} ms, "
          f"{r.probes_unanswered} unanswered)")  # fmt: skip


def print_profile(profile: dict[str, Any]) -> None:
    print(f"\npy-spy: {profile['samples']} samples of the server (non-idle threads)")
    print("  by thread: " + ", ".join(f"{k} {v}%" for k, v in profile["threads_pct"].items()))
    print("  (py-spy counts a worker thread woken but not yet running, or waiting for the GIL,")
    print("   as busy: /proc's per-thread CPU above is the ground truth for the split by thread)")
    print("  by stage (innermost match), all threads | MainThread (the event loop) only:")
    main = profile["main_thread_stages_pct"]
    for stage, pct in profile["stages_pct"].items():
        print(f"    {pct:5.1f}% | {main.get(stage, 0.0):5.1f}%  {stage}")
    print("  top functions by self time, MainThread only:")
    for frame, pct in profile["main_thread_top_self_pct"][:20]:
        print(f"    {pct:5.1f}%  {frame}")
    print("  top functions by self time, all threads:")
    for frame, pct in profile["top_self_pct"][:12]:
        print(f"    {pct:5.1f}%  {frame}")
    print("  top realtime/ functions, inclusive:")
    for frame, pct in profile["top_inclusive_pct"][:15]:
        print(f"    {pct:5.1f}%  {frame}")
