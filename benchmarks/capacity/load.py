"""The load: the microphone loop as pre-built ``append`` frames, and the client worker
processes that stream it to N sessions on the wall clock and probe the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from benchmarks.capacity.config import FRAME_S, FRAME_SAMPLES, RATE, SCRIPT, SLOTS
from benchmarks.harness.speech import synthesize
from tokenizer.pcm import pcm16_to_base64


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
