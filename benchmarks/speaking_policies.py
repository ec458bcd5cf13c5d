"""Benchmark: first-packet latency and reply completeness per speaking policy. SIMULATED engine.

Starts the real service (``python -m realtime serve``) with the ``sim`` engine at its default
production figures (Step-Audio-R1 on vLLM at TP=4 on H100-class GPUs, all SIMULATED: see
``realtime/engines/sim.py`` for the figures and their sources) and the ``simulated`` TTS
(espeak-ng with each reply's first chunk held to 150 ms), then speaks N turns per policy
with the SDK at real-time pace, each in a fresh session set to ``silence_duration_ms: 200``
and the policy, round-robin over the policies. Per policy it prints:

- first-packet latency p50/p90/p99, measured at the client (``TurnResult``: last voiced
  sample sent to first reply audio received; it includes the 200 ms silence window);
- the server's stage medians from ``response.x_turn`` (ms after ``speech_stopped``);
- reply completeness: the words heard (the audio transcript) matched in order against the
  sim's planned reply (``SimEngine.plan``), and how many reasoning tokens had been written
  before the first reply token, in time order (reasoning deltas the client received before
  ``speech_stopped`` + ``first_answer_token``; they go out at once, so this is within a
  token or two; speak-first shows the one or two that its concurrent formulation stream
  wrote while the first articulation, which saw no reasoning, was prefilling).

``--first-formulation-tokens K`` adds a run of ``mps`` on a server whose first articulation
comes after K reasoning tokens instead of Tc. Every figure it prints is SIMULATED.

Run: .venv/bin/python benchmarks/speaking_policies.py [--turns N] [--first-formulation-tokens K]
"""

from __future__ import annotations

import argparse
import asyncio
import difflib
import json
import re
import statistics
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.stats import percentile
from realtime.client import RealtimeClient, ReasoningDelta, SpeechStarted, speak_turn
from realtime.conversation import Conversation, UserAudioItem
from realtime.engines.sim import SimEngine, SimParams

RATE = 24_000
SILENCE_MS = 200
POLICIES = ("after-think", "mps", "speak-first")
QUESTIONS = (
    "What should I cook for dinner tonight?",
    "How do I keep my plants alive in winter?",
    "Is it a good idea to learn the piano at forty?",
    "Can you help me plan a short trip to the coast?",
    "Why is my laptop getting so slow?",
    "What is a good way to start running?",
)
STAGES = (
    "engine_request_sent",
    "first_reasoning_token",
    "first_answer_token",
    "first_reply_text",
    "first_tts_audio",
    "first_audio_sent",
)
BANNER = (
    "SIMULATED: engine 'sim' (no model runs; Step-Audio-R1 on vLLM, TP=4, H100-class timings "
    "from public figures) and TTS 'simulated' (espeak-ng, first chunk held to {tts_ms:g} ms)"
)
_WORD = re.compile(r"[a-z0-9']+")


@dataclass
class TurnSample:
    policy: str
    first_packet_ms: float | None
    stages_ms: dict[str, float]
    completeness: float
    heard_words: int
    planned_words: int
    reasoning_before_first_word: int
    simulated: bool


@dataclass
class Run:
    label: str
    server_args: tuple[str, ...]
    policies: tuple[str, ...]
    samples: list[TurnSample] = field(default_factory=list)


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def completeness(planned: list[str], heard: list[str]) -> float:
    """Share of the planned words heard, in order."""
    if not planned:
        return 1.0
    matcher = difflib.SequenceMatcher(None, planned, heard, autojunk=False)
    return sum(block.size for block in matcher.get_matching_blocks()) / len(planned)


async def one_turn(
    ws_url: str, policy: str, pcm: np.ndarray, sim: SimEngine, timeout_s: float
) -> TurnSample:
    session = {
        "audio": {
            "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS}}
        },
        "speaking": {"policy": policy},
    }
    async with RealtimeClient.connect(ws_url, session=session) as client:
        turn = await speak_turn(client, pcm, RATE, timeout=timeout_s)
    response = turn.response
    x_turn = response.x_turn
    if x_turn is None or x_turn.timings is None or response.status != "completed":
        raise RuntimeError(f"turn did not complete: {response.status} {response.errors}")
    stages = dict(x_turn.timings.stages_ms)
    item_id = next(e.item_id for e in response.events if isinstance(e, SpeechStarted))
    assert item_id is not None
    plan = sim.plan(Conversation("", (UserAudioItem(item_id),)))
    planned, heard = words(plan.answer_text), words(response.transcript)
    reasoning_before = 0
    stopped_at = turn.speech_stopped_at
    if stopped_at is not None and "first_answer_token" in stages:
        first_word_at = stopped_at + stages["first_answer_token"] / 1000.0
        reasoning_before = sum(
            1
            for e in response.events
            if isinstance(e, ReasoningDelta) and e.received_at <= first_word_at
        )
    return TurnSample(
        policy=policy,
        first_packet_ms=turn.first_packet_latency_ms,
        stages_ms=stages,
        completeness=completeness(planned, heard),
        heard_words=len(heard),
        planned_words=len(planned),
        reasoning_before_first_word=reasoning_before,
        simulated=x_turn.simulated,
    )


def table(run: Run) -> str:
    out = [f"\n== {run.label} ==  (server: {' '.join(run.server_args)})"]
    head = f"{'policy':<12} {'n':>3} {'p50':>7} {'p90':>7} {'p99':>7} | " + " ".join(
        f"{s.replace('first_', '1st_')[:14]:>14}" for s in STAGES
    )
    head += f" | {'complete':>8} {'min':>5} {'heard/plan':>10} {'think<1st':>9}"
    out += ["first-packet latency (ms, client) | server stage medians (ms after speech_stopped)"]
    out += [head, "-" * len(head)]
    for policy in run.policies:
        samples = [s for s in run.samples if s.policy == policy]
        latencies = [s.first_packet_ms for s in samples if s.first_packet_ms is not None]
        stage_medians = []
        for stage in STAGES:
            values = [s.stages_ms[stage] for s in samples if stage in s.stages_ms]
            stage_medians.append(f"{statistics.median(values):>14.0f}" if values else f"{'-':>14}")
        share = [s.completeness for s in samples]
        heard = sum(s.heard_words for s in samples)
        planned = sum(s.planned_words for s in samples)
        before = statistics.median(s.reasoning_before_first_word for s in samples)
        out.append(
            f"{policy:<12} {len(samples):>3} {percentile(latencies, 50):>7.0f} "
            f"{percentile(latencies, 90):>7.0f} {percentile(latencies, 99):>7.0f} | "
            + " ".join(stage_medians)
            + f" | {statistics.mean(share):>8.1%} {min(share):>5.0%} "
            f"{heard:>4}/{planned:<5} {before:>9.0f}"
        )
    return "\n".join(out)


async def run_policies(
    run: Run, url: str, utterances: list[np.ndarray], turns: int, sim: SimEngine
) -> None:
    ws_url = url.replace("http://", "ws://") + "/v1/realtime"
    for index in range(turns):
        for policy in run.policies:
            pcm = utterances[
                (index * len(run.policies) + run.policies.index(policy)) % len(utterances)
            ]
            sample = await one_turn(ws_url, policy, pcm, sim, timeout_s=120.0)
            run.samples.append(sample)
            print(
                f"  [{run.label}] turn {index + 1}/{turns} {policy:<11} first packet "
                f"{sample.first_packet_ms or float('nan'):7.0f} ms (simulated), "
                f"{sample.completeness:.0%} of the planned reply heard",
                flush=True,
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=10, help="turns per policy")
    parser.add_argument("--policies", nargs="+", default=list(POLICIES), choices=POLICIES)
    parser.add_argument(
        "--first-formulation-tokens", type=int, action="append", default=[],
        help="also run mps with the first articulation after this many reasoning tokens",
    )  # fmt: skip
    parser.add_argument("--tts-first-chunk-ms", type=float, default=150.0)
    parser.add_argument("--log", type=Path, default=Path("/tmp/speaking_policies_serve.log"))
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args()

    sim = SimEngine(SimParams())  # the server runs the defaults too
    base = ("--engine", "sim", "--tts", "simulated", "--tts-first-chunk-ms",
            f"{args.tts_first_chunk_ms:g}")  # fmt: skip
    runs = [Run("production timings (simulated TP=4)", base, tuple(args.policies))]
    for k in args.first_formulation_tokens:
        runs.append(
            Run(f"mps, first segment {k} tokens", (*base, "--first-formulation-tokens", str(k)),
                ("mps",))
        )  # fmt: skip
    banner = BANNER.format(tts_ms=args.tts_first_chunk_ms)
    print(banner)
    print(f"sim figures: {sim.params.describe()}; silence window {SILENCE_MS} ms")
    utterances = [synthesize(question, RATE) for question in QUESTIONS]
    for run in runs:
        with ServiceProcess(
            *run.server_args, "--log-level", "warning", log_path=args.log
        ) as service:
            url = service.http_url
            health = httpx.get(f"{url}/healthz", timeout=5.0).json()
            if not health.get("simulated") or "simulated" not in health.get("tts", ""):
                raise RuntimeError(f"expected a simulated engine and TTS, got {health}")
            asyncio.run(run_policies(run, url, utterances, args.turns, sim))
    print("\n" + banner)
    for run in runs:
        print(table(run))
    print(
        "\ncomplete: share of the planned reply's words heard, in order (mean; min); "
        "think<1st: reasoning tokens written before the first reply token (median). "
        "All figures SIMULATED."
    )
    if args.json:
        data: dict[str, Any] = {
            "simulated": True,
            "banner": banner,
            "runs": [{**asdict(run), "samples": [asdict(s) for s in run.samples]} for run in runs],
        }
        args.json.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
