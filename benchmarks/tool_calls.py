"""Benchmark: latency of a tool-calling turn, and from a function's output to the spoken
answer. SIMULATED engine.

Starts the real service (``python -m realtime serve``) with the ``sim`` engine at its default
production figures (Step-Audio-R1 on vLLM at TP=4 on H100-class GPUs, all SIMULATED: see
``realtime/engines/sim.py``), scripted to call the first offered tool on a turn's first
request (``--sim-tool-calls first-turn``), and the ``simulated`` TTS (espeak-ng with each
reply's first chunk held to 150 ms). Per speaking policy, N times, in a fresh session with
one tool (``get_weather``), ``silence_duration_ms: 200`` and the policy, the client:

1. speaks a question at real-time pace; the reply says "Let me check that." and calls the
   tool. **Tool-turn first packet**: last voiced sample sent to the first reply audio
   received (it includes the 200 ms silence window);
2. sends ``conversation.item.create`` (``function_call_output``) and ``response.create`` at
   once. **Output to audio**: the ``function_call_output`` send to the first audio of the
   answer received.

The target for (2) is the engine's time to first token plus the first TTS chunk plus 50 ms,
both measured by the server for that response (``response.x_turn``: request sent to first
token of either kind; first reply text to first TTS audio). A policy that reasons before it
speaks (after-think, mps) adds its reasoning on top, and says so. Every figure is SIMULATED.

Run (from the repository root): .venv/bin/python -m benchmarks.tool_calls [--turns N]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.stats import percentile
from benchmarks.harness.tools import WEATHER
from realtime.client import RealtimeClient, collect_response, speak_turn

RATE = 24_000
SILENCE_MS = 200
POLICIES = ("speak-first", "mps", "after-think")
QUESTION = "What is the weather like in Paris today?"
TARGET_SLACK_MS = 50.0


@dataclass(frozen=True)
class Sample:
    tool_turn_first_packet_ms: float
    output_to_audio_ms: float
    engine_ttft_ms: float
    first_tts_chunk_ms: float
    reasoning_tokens_before_reply: int

    @property
    def target_ms(self) -> float:
        return self.engine_ttft_ms + self.first_tts_chunk_ms + TARGET_SLACK_MS


def _span(stages: dict[str, float], start: str, *ends: str) -> float:
    reached = [stages[end] for end in ends if end in stages]
    if start not in stages or not reached:
        raise RuntimeError(f"stages missing from x_turn: {start}, {ends}: {stages}")
    return min(reached) - stages[start]


async def one_call(ws_url: str, policy: str, pcm: Any, timeout_s: float) -> Sample:
    session = {
        "audio": {
            "input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": SILENCE_MS}}
        },
        "speaking": {"policy": policy},
        "tools": [WEATHER],
    }
    async with RealtimeClient.connect(ws_url, session=session) as client:
        turn = await speak_turn(client, pcm, RATE, timeout=timeout_s)
        calls = [o for o in turn.response.done.raw["response"]["output"]
                 if o["type"] == "function_call"]  # fmt: skip
        if turn.response.status != "completed" or len(calls) != 1:
            raise RuntimeError(f"the tool turn did not call once: {turn.response.done.raw}")
        first_packet = turn.first_packet_latency_ms
        await client.update_session({"audio": {"input": {"turn_detection": None}}})
        sent_at = time.monotonic()
        output = {"type": "function_call_output", "call_id": calls[0]["call_id"],
                  "output": '{"sky": "clear", "celsius": 21}'}  # fmt: skip
        await client.send({"type": "conversation.item.create", "item": output})
        await client.create_response()
        answer = await collect_response(client, timeout=timeout_s)
    x_turn = answer.x_turn
    if answer.first_audio_at is None or x_turn is None or x_turn.timings is None:
        raise RuntimeError(f"the answer had no audio: {answer.done.raw}")
    if first_packet is None:
        raise RuntimeError("the tool turn had no audio")
    stages = dict(x_turn.timings.stages_ms)
    reasoning_before = sum(
        1 for e in answer.events
        if e.type == "response.reasoning.delta" and e.received_at <= answer.first_audio_at
    )  # fmt: skip
    return Sample(
        tool_turn_first_packet_ms=first_packet,
        output_to_audio_ms=1000.0 * (answer.first_audio_at - sent_at),
        engine_ttft_ms=_span(
            stages, "engine_request_sent", "first_reasoning_token", "first_answer_token"
        ),
        first_tts_chunk_ms=_span(stages, "first_reply_text", "first_tts_audio"),
        reasoning_tokens_before_reply=reasoning_before,
    )


def row(policy: str, samples: list[Sample]) -> str:
    def p50(values: list[float]) -> float:
        return statistics.median(values)

    tool = [s.tool_turn_first_packet_ms for s in samples]
    out = [s.output_to_audio_ms for s in samples]
    target = [s.target_ms for s in samples]
    within = sum(s.output_to_audio_ms <= s.target_ms for s in samples)
    return (
        f"{policy:<12} {p50(tool):>9.0f} {percentile(tool, 90):>9.0f}"
        f" {p50(out):>9.0f} {percentile(out, 90):>9.0f}"
        f" {p50([s.engine_ttft_ms for s in samples]):>8.0f}"
        f" {p50([s.first_tts_chunk_ms for s in samples]):>8.0f}"
        f" {p50(target):>8.0f} {within:>4}/{len(samples):<3}"
        f" {p50([float(s.reasoning_tokens_before_reply) for s in samples]):>9.0f}"
    )


async def run(ws_url: str, turns: int, timeout_s: float) -> dict[str, list[Sample]]:
    pcm = synthesize(QUESTION, RATE)
    results: dict[str, list[Sample]] = {policy: [] for policy in POLICIES}
    for _ in range(turns):
        for policy in POLICIES:
            results[policy].append(await one_call(ws_url, policy, pcm, timeout_s))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--turns", type=int, default=5, help="calls per policy (default 5)")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    args = parser.parse_args()
    serve = ("--engine", "sim", "--sim-tool-calls", "first-turn", "--tts", "simulated")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "serve.log"
        with ServiceProcess(*serve, "--log-level", "warning", log_path=log) as service:
            results = asyncio.run(run(service.ws_url, args.turns, args.timeout_s))
    print("SIMULATED: sim engine (default figures) + simulated TTS (first chunk 150 ms)")
    print(f"{args.turns} tool calls per policy; times in ms; p50 unless marked p90")
    print(
        f"{'policy':<12} {'tool p50':>9} {'tool p90':>9} {'out p50':>9} {'out p90':>9}"
        f" {'ttft':>8} {'tts1':>8} {'target':>8} {'within':>8} {'reasoned':>9}"
    )
    for policy, samples in results.items():
        print(row(policy, samples))
    print(
        "tool: tool-calling turn's first packet (last voiced sample -> first audio); "
        "out: function_call_output sent -> first answer audio; target: ttft + tts1 + "
        f"{TARGET_SLACK_MS:.0f} ms; reasoned: reasoning tokens received before the first "
        "answer audio"
    )


if __name__ == "__main__":
    main()
