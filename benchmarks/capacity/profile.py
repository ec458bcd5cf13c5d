"""Where the server's CPU goes: a py-spy ``record`` (raw) summarized by thread, stage and
function."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

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
