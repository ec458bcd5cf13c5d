"""Benchmark: first-packet latency and reply completeness per speaking policy, on vLLM (CPU).

The companion of ``speaking_policies.py`` (simulated TP=4 timings) with a real engine: vLLM
on this machine's CPU serving the tiny random-weight Step-Audio stand-in from
``benchmarks/harness/standin_model.py`` (built on the spot, cached under ``.cache/vllm``). Every
turn goes through the real service (silero VAD with a 200 ms silence window, espeak-ng TTS)
with the SDK speaking at real-time pace, round-robin over the policies.

The stand-in closes its reasoning after about 16 tokens on its own, which would leave the
policies nothing to differ on; as in the integration tests, ``</think>`` is biased away and
each session sets ``reasoning.effort: low``, so every turn reasons for exactly the 256-token
budget, the engine then closes the block and asks for the reply (``after-think``), while
``mps`` articulates every ``--formulation-tokens`` reasoning tokens and ``speak-first`` at
once. Absolute figures are CPU figures for a 2-layer model, not production ones; the
comparison between policies is the point.

Turns whose reply was empty (the stand-in may end its answer at once) have no first
packet: they are counted as ``silent`` and left out of the latency percentiles. Reply
completeness: the share of the reply's words (``response.output_audio_transcript.done``)
that were also spoken (the transcript deltas, which leave with their audio), and whether
the response completed; ``think<1st``: reasoning deltas received before the first reply
token.

Run: .venv/bin/python benchmarks/speaking_policies_vllm.py [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.process_priority import lower_priority
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.standin_model import build_standin_model_with
from benchmarks.harness.vllm_server import VllmServer, VllmServerConfig, default_vllm_python
from realtime.client import RealtimeClient, ReasoningDelta, speak_turn

RATE = 24_000
POLICIES = ("after-think", "mps", "speak-first")
QUESTIONS = (
    "What should I cook for dinner tonight?",
    "How do I keep my plants alive in winter?",
    "Can you help me plan a short trip to the coast?",
    "Why is my laptop getting so slow?",
)
STAGES = ("engine_request_sent", "first_reasoning_token", "first_answer_token", "first_audio_sent")
REPO = Path(__file__).resolve().parents[1]


@dataclass
class Sample:
    policy: str
    first_packet_ms: float
    stages_ms: dict[str, float]
    completed: bool
    spoken_share: float
    reasoning_before_first_word: int


async def one_turn(
    ws_url: str, policy: str, pcm: np.ndarray, max_output_tokens: int | None = None
) -> Sample:
    """``max_output_tokens`` (reasoning and reply together) bounds a random-weight model's
    reply, which may otherwise run, and be spoken in real time, for minutes."""
    session: dict[str, object] = {
        "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 200}}},
        "speaking": {"policy": policy},
        "reasoning": {"effort": "low"},
    }
    if max_output_tokens is not None:
        session["max_output_tokens"] = max_output_tokens
    async with RealtimeClient.connect(ws_url, session=session) as client:
        turn = await speak_turn(client, pcm, RATE, timeout=120)
    response = turn.response
    stages = dict(response.x_turn.timings.stages_ms) if response.x_turn else {}
    reply = response.transcript.split()
    spoken = "".join(
        e.raw["delta"]
        for e in response.events
        if e.type == "response.output_audio_transcript.delta"
    ).split()
    before = 0
    if turn.speech_stopped_at is not None and "first_answer_token" in stages:
        first_word_at = turn.speech_stopped_at + stages["first_answer_token"] / 1000.0
        before = sum(
            1
            for e in response.events
            if isinstance(e, ReasoningDelta) and e.received_at <= first_word_at
        )
    return Sample(
        policy=policy,
        first_packet_ms=turn.first_packet_latency_ms or float("nan"),
        stages_ms=stages,
        completed=response.status == "completed",
        spoken_share=len(spoken) / len(reply) if reply else 1.0,
        reasoning_before_first_word=before,
    )


def report(samples: list[Sample]) -> str:
    lines = [
        f"{'policy':<12} {'n':>3} {'p50':>6} {'p90':>6} {'p99':>6} | "
        + " ".join(f"{s.replace('first_', '1st_'):>16}" for s in STAGES)
        + f" | {'completed':>9} {'silent':>6} {'spoken':>7} {'think<1st':>9}"
    ]
    lines.append("-" * len(lines[0]))
    for policy in POLICIES:
        mine = [s for s in samples if s.policy == policy]
        if not mine:
            continue
        latency = [s.first_packet_ms for s in mine if not np.isnan(s.first_packet_ms)]
        if not latency:
            latency = [float("nan")]
        stage_medians = " ".join(
            f"{statistics.median(v):>16.0f}"
            if (v := [s.stages_ms[k] for s in mine if k in s.stages_ms])
            else f"{'-':>16}"
            for k in STAGES
        )
        lines.append(
            f"{policy:<12} {len(mine):>3} {np.percentile(latency, 50):>6.0f} "
            f"{np.percentile(latency, 90):>6.0f} {np.percentile(latency, 99):>6.0f} | "
            f"{stage_medians} | "
            f"{sum(s.completed for s in mine):>4}/{len(mine):<4} "
            f"{sum(np.isnan(s.first_packet_ms) for s in mine):>6} "
            f"{statistics.mean(s.spoken_share for s in mine):>7.0%} "
            f"{statistics.median(s.reasoning_before_first_word for s in mine):>9.0f}"
        )
    return "\n".join(lines)


async def run(
    ws_url: str,
    turns: int,
    utterances: list[np.ndarray],
    max_output_tokens: int | None = None,
) -> list[Sample]:
    samples = []
    for index in range(turns):
        for offset, policy in enumerate(POLICIES):
            pcm = utterances[(index * len(POLICIES) + offset) % len(utterances)]
            sample = await one_turn(ws_url, policy, pcm, max_output_tokens)
            samples.append(sample)
            latency = sample.first_packet_ms
            print(
                f"  turn {index + 1}/{turns} {policy:<11} first packet {latency:6.0f} ms",
                flush=True,
            )
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=6, help="turns per policy")
    parser.add_argument("--formulation-tokens", type=int, default=80, help="Tc (mps)")
    parser.add_argument("--json", type=Path, help="also write the samples here")
    args = parser.parse_args()
    info = build_standin_model_with(default_vllm_python(), REPO / ".cache" / "vllm" / "models")
    utterances = [synthesize(q, RATE) for q in QUESTIONS]
    work = Path(tempfile.mkdtemp(prefix="policies-vllm-"))
    config = VllmServerConfig(model_dir=info.model_dir, log_path=work / "vllm.log")
    with VllmServer(config) as server:
        assert server.pid is not None
        lower_priority(server.pid)
        never_close_thinking = {"logit_bias": {str(info.think_end_token_id): -100}}
        serve_args = (
            "--engine", "vllm", "--engine-url", server.base_url,
            "--stop-token-id", str(info.end_of_turn_token_id), "--temperature", "1",
            "--engine-extra-body", json.dumps(never_close_thinking),
            "--formulation-tokens", str(args.formulation_tokens),
        )  # fmt: skip
        with ServiceProcess(*serve_args, log_path=work / "serve.log") as service:
            samples = asyncio.run(run(service.ws_url, args.turns, utterances))
    print("\nvLLM on the CPU, tiny stand-in model; first-packet latency (ms, client, includes the")
    print("200 ms silence window) | server stage medians (ms after speech_stopped)")
    print(report(samples))
    if args.json:
        args.json.write_text(json.dumps([s.__dict__ for s in samples], indent=1))


if __name__ == "__main__":
    main()
