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
import asyncio
import contextlib
import itertools
import json
import multiprocessing as mp
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.service import ServiceProcess
from tests.support.speech import synthesize
from tokenizer.pcm import pcm16_to_base64

RATE = 24_000
FRAME_S = 0.020
FRAME_SAMPLES = int(RATE * FRAME_S)
SLOTS = 20  # phases: the 20 ms period cut into 1 ms slots
LATE_LIMIT_S = 0.100
CLIENT_LATE_P99_LIMIT_S = 0.010
HANDLED_MIN_RATIO = 0.98
DEFAULT_LEVELS = {
    "semantic_vad": "2,4,6,8,10,12,15,20,30,50,100,200",
    "server_vad": "10,20,30,35,40,50,75,100,150,200,300",
}
LAG_METRIC = "step_realtime_input_lag_seconds"

# The microphone loop: (text, ssml, silence after it in seconds). About 16 s, half speech:
# a complete question then a short pause, a sentence with a 700 ms mid-sentence pause, a
# statement and a long pause, a question and a long pause.
# fmt: off
SCRIPT: tuple[tuple[str, bool, float], ...] = (
    ("Hello there, how are you doing today?", False, 1.2),
    ('I would like to book a table for two <break time="700ms"/> at eight tomorrow evening.',
     True, 2.0),
    ("One two three four five six seven.", False, 1.0),
    ("What is the weather like in Paris?", False, 3.0),
)
# fmt: on


# -- audio ---------------------------------------------------------------------------------


def build_loop(idle_s: float) -> tuple[np.ndarray, dict[str, float]]:
    """The microphone loop at 24 kHz, and what is in it."""
    parts: list[np.ndarray] = []
    speech_s = 0.0
    pauses = 0
    for text, ssml, after_s in SCRIPT:
        pcm = synthesize(text, RATE, ssml=ssml)
        speech_s += len(pcm) / RATE
        parts += [pcm, np.zeros(round(after_s * RATE), dtype=np.int16)]
        pauses += 1 + text.count("<break")
    if idle_s > 0:
        parts.append(np.zeros(round(idle_s * RATE), dtype=np.int16))
    loop = np.concatenate(parts)
    loop = loop[: len(loop) // FRAME_SAMPLES * FRAME_SAMPLES]
    info = {
        "loop_s": len(loop) / RATE,
        "speech_s": speech_s,  # espeak's output, its own short silences included
        "pauses_per_loop": pauses,
        "sentences_per_loop": len(SCRIPT),
    }
    return loop, info


def append_messages(loop: np.ndarray) -> list[str]:
    """Every 20 ms frame of the loop as its ``input_audio_buffer.append`` event, encoded once."""
    return [
        json.dumps(
            {
                "type": "input_audio_buffer.append",
                "audio": pcm16_to_base64(loop[i : i + FRAME_SAMPLES]),
            },
            separators=(",", ":"),
        )
        for i in range(0, len(loop), FRAME_SAMPLES)
    ]


def masked_text_frame(text: str, mask: bytes = b"\x5a\xc3\x17\x8e") -> bytes:
    """``text`` as one complete, masked WebSocket text frame (RFC 6455 5.2), built once so
    that sending it is a single ``transport.write``. The mask key is fixed: a server does not
    (cannot) check that client mask keys are random."""
    payload = text.encode()
    n = len(payload)
    if n < 126:
        header = bytes([0x81, 0x80 | n])
    elif n < 1 << 16:
        header = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        header = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    key = np.frombuffer((mask * (n // 4 + 1))[:n], dtype=np.uint8)
    masked = (np.frombuffer(payload, dtype=np.uint8) ^ key).tobytes()
    return header + mask + masked


# -- /proc ---------------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def _stat_fields(path: str) -> list[str]:
    text = Path(path).read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on


def process_cpu_s(pid: int, with_children: bool = True) -> float:
    """utime+stime of ``pid`` (all its threads) and, optionally, reaped children's."""
    f = _stat_fields(f"/proc/{pid}/stat")
    ticks = int(f[11]) + int(f[12])
    if with_children:
        ticks += int(f[13]) + int(f[14])
    return ticks / CLK_TCK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(_stat_fields(f"/proc/{entry}/stat")[1])
            except (OSError, ValueError, IndexError):
                continue
            children[ppid].append(int(entry))
    out, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def tree_cpu_s(pid: int) -> float:
    total = process_cpu_s(pid)
    for child in descendants(pid):
        with contextlib.suppress(OSError, ValueError):
            total += process_cpu_s(child, with_children=False)
    return total


def thread_stats(pid: int) -> dict[int, tuple[float, float, int]]:
    """Per thread id: user and system CPU seconds, and context switches (voluntary and not)."""
    out: dict[int, tuple[float, float, int]] = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            f = _stat_fields(f"/proc/{pid}/task/{tid}/stat")
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
        except OSError:
            continue
        switches = sum(
            int(line.split()[1]) for line in status.splitlines() if "ctxt_switches" in line
        )
        out[int(tid)] = (int(f[11]) / CLK_TCK, int(f[12]) / CLK_TCK, switches)
    return out


def thread_names(pid: int, py_spy: str | None) -> dict[int, str]:
    """Python thread names by thread id, from ``py-spy dump`` (``Thread TID (...): "NAME"``);
    the main thread is always known."""
    names = {pid: "main (event loop)"}
    if py_spy:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            dump = subprocess.run(
                [py_spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=20
            ).stdout
            for m in re.finditer(r'^Thread (\d+) \([^)]*\): "([^"]+)"', dump, re.MULTILINE):
                if int(m.group(1)) != pid:
                    names[int(m.group(1))] = m.group(2)
    return names


def thread_affinities(pid: int) -> set[str]:
    cpus = set()
    for tid in os.listdir(f"/proc/{pid}/task"):
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if line.startswith("Cpus_allowed_list:"):
                    cpus.add(line.split(":", 1)[1].strip())
    return cpus


def core_times() -> dict[str, dict[str, float]]:
    """Per-core busy / idle / steal seconds from /proc/stat."""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *vals = line.split()
            v = [int(x) / CLK_TCK for x in vals]
            user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
            out[name] = {
                "busy": user + nice + system + irq + softirq,
                "idle": idle + iowait,
                "steal": steal,
            }
    return out


def cpu_list(spec: str) -> list[int]:
    """``0,2-3`` -> [0, 2, 3]."""
    out: list[int] = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


def wait_for_quiet(cores: list[int], limit: float, timeout_s: float) -> float:
    """Waits until the busy and stolen share of ``cores`` over 2 s is under ``limit``;
    returns it."""
    names = [f"cpu{c}" for c in cores]
    deadline = time.monotonic() + timeout_s
    while True:
        a, t = core_times(), time.monotonic()
        time.sleep(2.0)
        b, wall = core_times(), time.monotonic() - t
        load = sum(b[n]["busy"] + b[n]["steal"] - a[n]["busy"] - a[n]["steal"] for n in names)
        load /= wall
        if load < limit or time.monotonic() > deadline:
            return load


# -- the server ----------------------------------------------------------------------------


# -- Prometheus text -----------------------------------------------------------------------


def parse_metrics(text: str) -> dict[str, float]:
    """``name{labels}`` -> value for every sample line."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[key] = float(value)
    return out


def metric_delta(
    before: dict[str, float], after: dict[str, float], prefix: str
) -> dict[str, float]:
    return {
        k: after[k] - before.get(k, 0.0)
        for k in after
        if k.startswith(prefix) and not k.endswith("_created")
    }


def histogram(delta: dict[str, float], name: str) -> tuple[list[tuple[float, float]], float, float]:
    """Cumulative buckets [(le, count)], count and sum of histogram ``name`` (no labels)."""
    buckets = []
    for key, value in delta.items():
        m = re.fullmatch(rf'{name}_bucket\{{le="([^"]+)"\}}', key)
        if m:
            buckets.append((float("inf") if m.group(1) == "+Inf" else float(m.group(1)), value))
    buckets.sort()
    return buckets, delta.get(f"{name}_count", 0.0), delta.get(f"{name}_sum", 0.0)


def bucket_quantile(buckets: list[tuple[float, float]], count: float, q: float) -> float:
    """Upper bound of the bucket holding quantile ``q`` (inf: above the largest bound)."""
    if count <= 0:
        return float("nan")
    for bound, cumulative in buckets:
        if cumulative >= q * count:
            return bound
    return float("inf")


def labelled(delta: dict[str, float], name: str, label: str) -> dict[str, float]:
    out = {}
    for key, value in delta.items():
        m = re.fullmatch(rf'{name}\{{{label}="([^"]+)"\}}', key)
        if m and value:
            out[m.group(1)] = value
    return out


# -- the client worker (a process of its own) ----------------------------------------------


@dataclass
class WorkerPlan:
    url: str
    indices: list[int]  # global session indices
    total_sessions: int
    session_update: dict[str, Any]
    probe_interval_s: float
    cpu: int | None
    raw_send: bool = True
    connect_concurrency: int = 25


@dataclass
class WorkerReport:
    connected: int = 0
    connect_failures: list[str] = field(default_factory=list)
    closed_early: int = 0
    frames_sent_window: int = 0
    frames_sent_total: int = 0
    lateness_ms: dict[str, float] = field(default_factory=dict)
    late_over_5ms: int = 0
    late_over_20ms: int = 0
    late_over_100ms: int = 0
    lateness_sample: list[float] = field(default_factory=list)
    probe_rtts_ms: list[float] = field(default_factory=list)
    probes_sent_window: int = 0
    probes_unanswered: int = 0
    max_write_buffer_bytes: int = 0
    events: dict[str, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)


class _Session:
    __slots__ = ("alive", "index", "offset", "probes", "reader", "ready", "slot", "ws")

    def __init__(self, index: int, offset: int, slot: int) -> None:
        self.index = index
        self.offset = offset
        self.slot = slot
        self.ws: Any = None
        self.ready = asyncio.Event()
        self.reader: asyncio.Task[None] | None = None
        self.probes: dict[str, float] = {}
        self.alive = True


async def _worker_main(plan: WorkerPlan, texts: list[str], conn: Any) -> None:
    from websockets.asyncio.client import connect

    frames: list[Any] = [masked_text_frame(t) for t in texts] if plan.raw_send else texts
    report = WorkerReport()
    events: Counter[str] = Counter()
    errors: Counter[str] = Counter()
    window = [float("inf"), float("inf")]  # [start, end] of the measurement window
    rtts: list[float] = []
    n_frames = len(frames)
    sessions = [_Session(g, (g * 7919) % n_frames, g % SLOTS) for g in plan.indices]

    async def read(s: _Session) -> None:
        try:
            async for message in s.ws:
                kind = (
                    message[9 : message.index('"', 9)] if message.startswith('{"type":"') else "?"
                )
                if kind == "error":
                    event = json.loads(message)
                    err = event.get("error", {})
                    sent = s.probes.pop(err.get("event_id") or "", None)
                    if sent is not None:
                        if window[0] <= sent < window[1]:
                            rtts.append(time.monotonic() - sent)
                        continue
                    errors[err.get("code", "?")] += 1
                elif kind == "session.updated":
                    s.ready.set()
                events[kind] += 1
        except Exception:  # a dropped connection shows up as closed_early
            pass
        finally:
            s.alive = False
            s.ready.set()

    semaphore = asyncio.Semaphore(plan.connect_concurrency)

    async def open_session(s: _Session) -> None:
        async with semaphore:
            try:
                s.ws = await connect(
                    plan.url, compression=None, max_size=2**24, open_timeout=60,
                    close_timeout=2, ping_interval=None, max_queue=None,
                )  # fmt: skip
            except Exception as exc:
                report.connect_failures.append(f"{type(exc).__name__}: {exc}")
                s.alive = False
                return
            s.reader = asyncio.create_task(read(s))
            await s.ws.send(json.dumps({"type": "session.update", "session": plan.session_update}))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(60):
                    await s.ready.wait()

    await asyncio.gather(*(open_session(s) for s in sessions))
    live = [s for s in sessions if s.alive and s.ready.is_set()]
    report.connected = len(live)
    conn.send(("ready", report.connected))
    command, t0, warmup_s, window_s, tail_s = conn.recv()
    assert command == "go"
    window[0], window[1] = t0 + warmup_s, t0 + warmup_s + window_s
    t_end = window[1] + tail_s

    by_slot: list[list[_Session]] = [[] for _ in range(SLOTS)]
    for s in live:
        by_slot[s.slot].append(s)
    slots = [(k, group) for k, group in enumerate(by_slot) if group]
    probe_every = max(1, round(plan.probe_interval_s / FRAME_S)) if plan.probe_interval_s > 0 else 0
    late: list[float] = []
    slot_s = FRAME_S / SLOTS
    probe_seq = 0
    frame_no = 0
    transports = {s.index: s.ws.transport for s in live} if plan.raw_send else None
    max_buffer = 0
    sent_total = sent_window = probes_window = 0
    monotonic = time.monotonic
    while True:
        base = t0 + frame_no * FRAME_S
        if base >= t_end:
            break
        for k, group in slots:
            target = base + k * slot_s
            delay = target - monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            in_window = window[0] <= target < window[1]
            for s in group:
                if not s.alive:
                    continue
                lateness = monotonic() - target
                try:
                    if transports is not None:
                        transport = transports[s.index]
                        if transport.is_closing():
                            raise ConnectionError("closed")
                        transport.write(frames[(s.offset + frame_no) % n_frames])
                    else:
                        await s.ws.send(frames[(s.offset + frame_no) % n_frames])
                    if probe_every and (frame_no + s.index) % probe_every == 0:
                        probe_seq += 1
                        event_id = f"probe_{s.index}_{probe_seq}"
                        s.probes[event_id] = monotonic()
                        await s.ws.send(
                            '{"type":"conversation.item.delete","event_id":"'
                            + event_id
                            + '","item_id":"item_missing"}'
                        )
                        if in_window:
                            probes_window += 1
                except Exception:
                    s.alive = False
                    continue
                sent_total += 1
                if in_window:
                    sent_window += 1
                    late.append(lateness)
        if transports is not None and frame_no % 50 == 0:  # bytes the kernel would not take
            max_buffer = max(max_buffer, *(t.get_write_buffer_size() for t in transports.values()))
        frame_no += 1

    await asyncio.sleep(0.5)  # let the last probe answers arrive
    report.probes_unanswered = sum(
        1 for s in live for sent in s.probes.values() if window[0] <= sent < window[1]
    )
    report.closed_early = sum(1 for s in live if not s.alive)
    await asyncio.gather(*(s.ws.close() for s in live), return_exceptions=True)
    for s in live:
        if s.reader is not None:
            s.reader.cancel()
    await asyncio.gather(*(s.reader for s in live if s.reader), return_exceptions=True)

    lat = np.asarray(late) if late else np.zeros(1)
    report.max_write_buffer_bytes = max_buffer
    report.frames_sent_window = sent_window
    report.frames_sent_total = sent_total
    report.lateness_ms = {
        "p50": float(np.percentile(lat, 50) * 1e3),
        "p99": float(np.percentile(lat, 99) * 1e3),
        "max": float(lat.max() * 1e3),
    }
    report.late_over_5ms = int((lat > 0.005).sum())
    report.late_over_20ms = int((lat > 0.020).sum())
    report.late_over_100ms = int((lat > 0.100).sum())
    step = max(1, len(late) // 20000)
    report.lateness_sample = [float(x) for x in lat[::step]]
    report.probe_rtts_ms = [r * 1e3 for r in rtts]
    report.probes_sent_window = probes_window
    report.events = dict(events)
    report.errors = dict(errors)
    conn.send(("done", asdict(report)))


def worker_entry(plan: WorkerPlan, frames: list[str], conn: Any) -> None:
    if plan.cpu is not None:
        os.sched_setaffinity(0, {plan.cpu})
    try:
        import uvloop

        uvloop.run(_worker_main(plan, frames, conn))
    except ImportError:
        asyncio.run(_worker_main(plan, frames, conn))


# -- one level -----------------------------------------------------------------------------


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
            "p50": float(np.percentile(rtts, 50)) if rtts else float("nan"),
            "p99": float(np.percentile(rtts, 99)) if rtts else float("nan"),
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


def judge(r: LevelResult, smart_turn_limit_s: float = 0.5) -> None:
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


# -- py-spy profile ------------------------------------------------------------------------

STAGES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Smart Turn (features + model)", ("smart_turn", "turn_features")),
    ("silero VAD model + rounds", ("_run_rounds", "silero.py")),
    ("VAD batcher/stream (loop side)", ("turns/vad.py",)),
    ("turn input/detector", ("turns/input.py", "turn_detector", "turn_audio", "audio_buffer")),
    ("resample (soxr)", ("resample", "stages.py")),
    ("event parse/validate", ("client_events", "pydantic")),
    ("base64 decode", ("pcm16_from_base64", "base64", "tokenizer/pcm.py")),
    ("engine (sim) / responses", ("engines/", "session/responses", "speaking/")),
    ("outbox/send", ("outbox", "transports/websocket.py:deliver", "WebSocketSink")),
    ("prometheus", ("prometheus_client",)),
    ("websocket protocol (uvicorn/websockets)", ("uvicorn", "websockets", "starlette")),
    ("asyncio/uvloop", ("asyncio", "uvloop")),
)


def summarize_profile(path: Path, top: int = 25) -> dict[str, Any]:
    """Self and inclusive sample counts from py-spy's raw (collapsed) output."""
    self_counts: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    per_thread: Counter[str] = Counter()
    stage_counts: Counter[str] = Counter()
    main_stages: Counter[str] = Counter()
    main_self: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack:
            continue
        count = int(n)
        frames = stack.split(";")
        thread, frames = frames[0], frames[1:]
        total += count
        thread_name = thread.split(": ", 1)[-1]  # "thread (TID): NAME"
        per_thread[thread_name] += count
        main = thread_name == "MainThread"
        if frames:
            self_counts[frames[-1]] += count
            if main:
                main_self[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
        # the innermost frame that names a stage: scan from the leaf up
        for frame in reversed(frames):
            stage = next((s for s, needles in STAGES if any(n in frame for n in needles)), None)
            if stage is not None:
                break
        else:
            stage = "other"
        stage_counts[stage] += count
        if main:
            main_stages[stage] += count
    pct = lambda c: round(100.0 * c / total, 1) if total else 0.0  # noqa: E731
    main_total = per_thread["MainThread"]
    main_pct = lambda c: round(100.0 * c / main_total, 1) if main_total else 0.0  # noqa: E731
    return {
        "samples": total,
        "threads_pct": {k: pct(v) for k, v in per_thread.most_common()},
        "stages_pct": {k: pct(v) for k, v in stage_counts.most_common()},
        "top_self_pct": [(k, pct(v)) for k, v in self_counts.most_common(top)],
        "main_thread_stages_pct": {k: main_pct(v) for k, v in main_stages.most_common()},
        "main_thread_top_self_pct": [(k, main_pct(v)) for k, v in main_self.most_common(top)],
        "top_inclusive_pct": [
            (k, pct(v)) for k, v in inclusive.most_common(top * 2) if "realtime/" in k
        ][:top],
    }


# -- output --------------------------------------------------------------------------------


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


# -- main ----------------------------------------------------------------------------------


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
