"""Proof by hand that the stand-in model runs on a real vLLM CPU server the way the service uses it.

Run from the repository root with the project's virtualenv (the vLLM one only builds the
model and runs the server):

    .venv/bin/python -m tests.support.smoke_vllm [--work-dir DIR] [--skip-ttft]

It prints each exchange and writes a JSON report to <work-dir>/smoke-report.json.
Not a pytest test: it takes a few minutes and its timings are for reading, not asserting.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import io
import json
import os
import statistics
import sys
import time
import wave
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.harness.prometheus import MetricsSnapshot
from benchmarks.harness.standin_model import StandinModelInfo, build_standin_model_with
from benchmarks.harness.vllm_server import (
    SERVED_MODEL_NAME,
    VllmServer,
    VllmServerConfig,
    default_vllm_python,
)

SAMPLE_RATE = 16_000
SYSTEM_PROMPT = "You are a helpful voice assistant. Think, then answer briefly."
RUNNING = "vllm:num_requests_running"
PREFIX_HITS = "vllm:prefix_cache_hits_total"
PREFIX_QUERIES = "vllm:prefix_cache_queries_total"
CACHED_PROMPT_TOKENS = "vllm:prompt_tokens_cached_total"


def speechlike_wav(seconds: float, seed: int) -> bytes:
    """16 kHz mono 16-bit WAV of syllable-like tone bursts (distinct per seed)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 60 * np.sin(2 * np.pi * rng.uniform(0.2, 0.6) * t)
    voice = np.sin(2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE)
    envelope = np.clip(np.sin(2 * np.pi * rng.uniform(3, 5) * t + rng.uniform(0, 6)), 0, None)
    signal = 0.4 * voice * envelope + 0.01 * rng.standard_normal(t.size)
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(SAMPLE_RATE)
        out.writeframes((signal * 32767).astype(np.int16).tobytes())
    return buffer.getvalue()


def audio_part(seconds: float, seed: int) -> dict[str, Any]:
    data = base64.b64encode(speechlike_wav(seconds, seed)).decode()
    return {"type": "input_audio", "input_audio": {"data": data, "format": "wav"}}


def conversation(*parts: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SYSTEM_PROMPT},
        {"role": "user", "content": list(parts)},
    ]


def chat_body(
    messages: list[dict[str, Any]], info: StandinModelInfo, **extra: Any
) -> dict[str, Any]:
    return {
        "model": SERVED_MODEL_NAME,
        "messages": messages,
        "stream": True,
        "stream_options": {"include_usage": True},
        "skip_special_tokens": False,
        "stop_token_ids": [info.end_of_turn_token_id],
        "max_tokens": 96,
        **extra,
    }


def short(body: dict[str, Any]) -> str:
    """The request as JSON with base64 audio elided, for the report."""
    text = json.dumps(body)
    for message in body["messages"]:
        if isinstance(message["content"], list):
            for part in message["content"]:
                if part["type"] == "input_audio":
                    text = text.replace(part["input_audio"]["data"], "<base64 wav>")
    return text


@dataclass
class StreamResult:
    text: str = ""
    first_token_s: float | None = None
    total_s: float = 0.0
    finish_reason: str | None = None
    stop_reason: int | str | None = None
    usage: dict[str, int] = field(default_factory=dict)


async def stream_chat(client: httpx.AsyncClient, body: dict[str, Any]) -> StreamResult:
    result = StreamResult()
    started = time.perf_counter()
    async with client.stream("POST", "/chat/completions", json=body) as response:
        if response.status_code != 200:
            raise RuntimeError(f"{response.status_code}: {(await response.aread()).decode()}")
        async for line in response.aiter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            chunk = json.loads(line.removeprefix("data: "))
            result.usage = chunk.get("usage") or result.usage
            for choice in chunk.get("choices", []):
                delta = choice["delta"].get("content") or ""
                # The first chunk only announces the role; time the first real token.
                if delta and result.first_token_s is None:
                    result.first_token_s = time.perf_counter() - started
                result.text += delta
                if choice.get("finish_reason"):
                    result.finish_reason = choice["finish_reason"]
                    result.stop_reason = choice.get("stop_reason")
    result.total_s = time.perf_counter() - started
    return result


async def prefill(client: httpx.AsyncClient, body: dict[str, Any]) -> dict[str, Any]:
    request = {**body, "stream": False, "max_tokens": 1}
    request.pop("stream_options", None)
    response = await client.post("/chat/completions", json=request)
    response.raise_for_status()
    return dict(response.json()["usage"])


def process_group_rss_mib(pgid: int) -> float:
    total_pages = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid:
                total_pages += int((entry / "statm").read_text().split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return total_pages * os.sysconf("SC_PAGE_SIZE") / 2**20


async def wait_for_gauge(server: VllmServer, name: str, target: float, timeout_s: float) -> float:
    """Seconds until the gauge reads `target`; raises TimeoutError after timeout_s."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if (await server.metrics_async()).value(name) == target:
            return time.perf_counter() - started
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{name} did not reach {target} in {timeout_s} s")


async def part_a_streaming(client: httpx.AsyncClient, info: StandinModelInfo) -> dict[str, Any]:
    """Streaming with Step-Audio roles, one and two audio parts."""
    one = chat_body(conversation(audio_part(3, seed=1)), info, seed=7)
    two = chat_body(
        conversation({"type": "text", "text": "Two clips:"}, audio_part(3, 2), audio_part(2, 3)),
        info,
        seed=8,
    )
    results: dict[str, Any] = {}
    for name, body in (("one_audio_part", one), ("two_audio_parts", two)):
        streamed = await stream_chat(client, body)
        print(
            f"(a) {name}: {streamed.usage} finish={streamed.finish_reason}/{streamed.stop_reason}"
        )
        print(f"    text: {streamed.text!r}")
        results[name] = {"request": short(body), **asdict(streamed)}
    think_closed = 0
    samples = 12
    for seed in range(samples):
        streamed = await stream_chat(client, {**one, "seed": 100 + seed, "max_tokens": 64})
        think_closed += "</think>" in streamed.text
    print(f"(a) {think_closed}/{samples} sampled streams of 64 tokens contained </think>")
    results["think_closed_fraction"] = think_closed / samples
    return results


async def part_b_continue(
    client: httpx.AsyncClient, server: VllmServer, info: StandinModelInfo
) -> dict[str, Any]:
    """Continuing an assistant message that already closed its reasoning block."""
    messages = [
        *conversation(audio_part(3, seed=4)),
        {"role": "assistant", "content": "<think>\nThe user hummed a tune.</think>\n"},
    ]
    body = chat_body(
        messages, info, continue_final_message=True, add_generation_prompt=False, seed=9
    )
    rendered = await client.post(
        f"{server.root_url}/tokenize",
        json={
            "model": SERVED_MODEL_NAME,
            "messages": messages,
            "continue_final_message": True,
            "add_generation_prompt": False,
            "return_token_strs": True,
        },
    )
    rendered.raise_for_status()
    prompt = "".join(rendered.json()["token_strs"]).replace("Ġ", " ").replace("Ċ", "\n")
    prompt_tail = prompt[-60:]
    continuations = [await stream_chat(client, {**body, "seed": seed}) for seed in range(5)]
    for streamed in continuations:
        print(f"(b) continuation: {streamed.text!r} ({streamed.finish_reason})")
    print(f"(b) prompt ends {prompt_tail!r}")
    return {
        "request": short(body),
        "prompt_tail": prompt_tail,
        "continuations": [asdict(streamed) for streamed in continuations],
        "any_think_end_in_continuations": any("</think>" in s.text for s in continuations),
    }


async def part_c_prefix_cache(
    client: httpx.AsyncClient, server: VllmServer, info: StandinModelInfo
) -> dict[str, Any]:
    """A prefill-only request, then the same prompt plus one more audio part hits the cache."""
    first_part = audio_part(6, seed=5)
    before = await server.metrics_async()
    prefill_usage = await prefill(client, chat_body(conversation(first_part), info))
    middle = await server.metrics_async()
    body = chat_body(conversation(first_part, audio_part(2, seed=6)), info, max_tokens=8)
    streamed = await stream_chat(client, body)
    after = await server.metrics_async()

    def delta(name: str, a: MetricsSnapshot, b: MetricsSnapshot) -> float:
        return b.value(name) - a.value(name)

    result = {
        "prefill_usage": prefill_usage,
        "followup_usage": streamed.usage,
        "prefix_hits_from_prefill": delta(PREFIX_HITS, before, middle),
        "prefix_hits_from_followup": delta(PREFIX_HITS, middle, after),
        "prefix_queries_from_followup": delta(PREFIX_QUERIES, middle, after),
        "cached_prompt_tokens_from_followup": delta(CACHED_PROMPT_TOKENS, middle, after),
        "followup_usage_cached": (streamed.usage.get("prompt_tokens_details") or {}),
    }
    print(f"(c) {result}")
    return result


async def part_d_cancel(
    client: httpx.AsyncClient, server: VllmServer, info: StandinModelInfo
) -> dict[str, Any]:
    """Closing a stream mid-way frees the request on the server."""
    body = chat_body(conversation(audio_part(2, seed=10)), info, max_tokens=4000, ignore_eos=True)
    body.pop("stop_token_ids")
    chunks: list[str] = []
    running_while_streaming = 0.0
    async with client.stream("POST", "/chat/completions", json=body) as response:
        # No `break` out of `async for`: the abandoned iterator would close the connection
        # before the gauge is read. The gauge can lag the first chunks, so poll it (bounded).
        lines = response.aiter_lines()
        while running_while_streaming < 1 and len(chunks) < 400:
            line = await anext(lines)
            if line.startswith("data: "):
                chunks.append(line)
                if len(chunks) % 8 == 0:
                    running_while_streaming = (await server.metrics_async()).value(RUNNING)
        await response.aclose()
    closed_at = time.perf_counter()
    seconds_to_zero = await wait_for_gauge(server, RUNNING, 0, timeout_s=15)
    result = {
        "running_while_streaming": running_while_streaming,
        "seconds_until_running_is_zero": seconds_to_zero,
        "closed_after_chunks": len(chunks),
        "last_chunk": chunks[-1],
        "wall_s": time.perf_counter() - closed_at,
    }
    print(f"(d) {result}")
    return result


async def part_e_ttft(server: VllmServer, info: StandinModelInfo, repeats: int) -> dict[str, Any]:
    """Time to first token: cold versus after prefilling all but the last 2 s."""
    results: dict[str, Any] = {}
    seed = 1000
    async with httpx.AsyncClient(base_url=server.base_url, timeout=300) as client:
        await stream_chat(client, chat_body(conversation(audio_part(1, 999)), info, max_tokens=2))
        hello = {"type": "text", "text": "Hello, how are you today?"}
        text_only = [
            (
                await stream_chat(client, chat_body(conversation(hello), info, max_tokens=2))
            ).first_token_s
            or 0.0
            for _ in range(repeats)
        ]
        results["text_only_median_s"] = statistics.median(text_only)
        print(f"(e) text-only TTFT median {results['text_only_median_s']:.3f} s")
        for seconds in (5, 10, 20):
            timings: dict[str, list[float]] = {
                "cold_one_part": [],
                "cold_two_parts": [],
                "warm": [],
            }
            for _ in range(repeats):
                seed += 3
                head, tail = audio_part(seconds - 2, seed), audio_part(2, seed + 1)
                whole = audio_part(seconds, seed + 2)
                for name, parts in (("cold_one_part", (whole,)), ("cold_two_parts", (head, tail))):
                    streamed = await stream_chat(
                        client, chat_body(conversation(*parts), info, max_tokens=2)
                    )
                    assert streamed.first_token_s is not None
                    timings[name].append(streamed.first_token_s)
                seed += 3
                head, tail = audio_part(seconds - 2, seed), audio_part(2, seed + 1)
                await prefill(client, chat_body(conversation(head), info))
                streamed = await stream_chat(
                    client, chat_body(conversation(head, tail), info, max_tokens=2)
                )
                assert streamed.first_token_s is not None
                timings["warm"].append(streamed.first_token_s)
            results[f"{seconds}s"] = {
                name: {"median_s": statistics.median(values), "all_s": values}
                for name, values in timings.items()
            }
            medians = {name: round(v["median_s"], 3) for name, v in results[f"{seconds}s"].items()}
            print(f"(e) {seconds:>2} s audio: TTFT medians {medians}")
    return results


async def run(args: argparse.Namespace) -> dict[str, Any]:
    python = default_vllm_python()
    report: dict[str, Any] = {}
    started = time.perf_counter()
    info = await asyncio.to_thread(build_standin_model_with, python, args.work_dir / "models")
    report["build_s"] = time.perf_counter() - started
    report["eot_token_id"] = info.end_of_turn_token_id
    report["think_end_token_id"] = info.think_end_token_id
    print(
        f"model {info.model_dir} (EOT id {info.end_of_turn_token_id}) in {report['build_s']:.1f} s"
    )

    config = VllmServerConfig(model_dir=info.model_dir, log_path=args.work_dir / "vllm-small.log")
    async with VllmServer(config) as server:
        assert server.pid is not None
        report["startup_s"] = server.startup_seconds
        report["rss_mib_idle"] = process_group_rss_mib(server.pid)
        print(f"server up in {server.startup_seconds:.1f} s, RSS {report['rss_mib_idle']:.0f} MiB")
        async with httpx.AsyncClient(base_url=server.base_url, timeout=120) as client:
            report["a"] = await part_a_streaming(client, info)
            report["b"] = await part_b_continue(client, server, info)
            report["c"] = await part_c_prefix_cache(client, server, info)
            report["d"] = await part_d_cancel(client, server, info)
        report["rss_mib_after"] = process_group_rss_mib(server.pid)
        report["metric_names"] = sorted(
            name for name in (await server.metrics_async()).names() if name.startswith("vllm:")
        )

    if not args.skip_ttft:
        wide = await asyncio.to_thread(
            build_standin_model_with,
            python,
            args.work_dir / "models",
            hidden_size=512,
            num_layers=4,
            audio_hidden_size=512,
            audio_layers=4,
        )
        config = VllmServerConfig(
            model_dir=wide.model_dir, log_path=args.work_dir / "vllm-wide.log"
        )
        async with VllmServer(config) as server:
            assert server.pid is not None
            report["wide_startup_s"] = server.startup_seconds
            report["e"] = await part_e_ttft(server, wide, repeats=args.repeats)
            report["wide_rss_mib_after"] = process_group_rss_mib(server.pid)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/step-vllm-smoke"))
    parser.add_argument("--skip-ttft", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    args.work_dir.mkdir(parents=True, exist_ok=True)
    report = asyncio.run(run(args))
    out = args.work_dir / "smoke-report.json"
    out.write_text(json.dumps(report, indent=2, default=str) + "\n")
    print(f"report: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
