"""Hostile load: a flood of WebSocket connection attempts and WebRTC offers against a service
with ``--max-sessions`` while real sessions talk. Excess attempts must be refused quickly,
and the real sessions must not notice.

The service (``--engine sim --tts simulated``: engine timings and the first TTS chunk are
SIMULATED; VAD, turn-taking, admission, both transports are real) runs on 127.0.0.1 with
``--max-sessions 100``. ``--talkers`` sessions (the SDK's ``RealtimeClient``) hold spoken
turns in a loop (espeak-ng utterances streamed in real time) for ``--seconds``, twice: once
quiet, once with a flood that starts ``--flood-after`` seconds in: ``--attempts`` WebSocket
handshakes and ``--offers`` WebRTC offers (one aiortc offer, posted again and again) spread
over ``--flood-seconds``, from a process of its own. Flood connections that are admitted are
held open until the run ends; admitted offers never connect (their caller is gone) and are
freed by the service. Everything shares this machine's cores: the flood's own client work
competes with the service for CPU, as it would not if it came from elsewhere.

Reported: attempts admitted and refused (by status), the time to a refusal (p50, p99), and
the talkers' first-packet p99 with and without the flood, as a ratio (target <= 1.2x), both
as the client sees it and as the server times it (x_turn: end of turn to first audio sent).

    .venv/bin/python benchmarks/hostile_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.offers import make_offer
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import synthesize
from benchmarks.harness.stats import percentile
from realtime.client import RealtimeClient, speak_turn

RATE = 24_000
SENTENCES = (
    "Hello there, how are you doing today?",
    "What is the weather like in Paris?",
    "Can you remind me to buy some milk?",
)


@dataclass
class Flood:
    outcomes: Counter[str] = field(default_factory=Counter)
    refusal_ms: list[float] = field(default_factory=list)
    held: list[ClientConnection] = field(default_factory=list)


@dataclass
class Talk:
    client_ms: list[float] = field(default_factory=list)
    """First packet at the client: first reply audio received minus last voiced sample sent."""
    server_ms: list[float] = field(default_factory=list)
    """The server's own figure (x_turn): end of turn to first reply audio sent."""
    failures: list[str] = field(default_factory=list)


async def talk(
    service: ServiceProcess,
    utterances: list[np.ndarray],
    index: int,
    deadline: float,
    result: Talk,
) -> None:
    try:
        async with RealtimeClient.connect(service.ws_url, open_timeout=30) as client:
            turn_index = index
            while time.monotonic() < deadline:
                turn = await speak_turn(
                    client, utterances[turn_index % len(utterances)], RATE, timeout=60
                )
                turn_index += 1
                if turn.first_packet_latency_ms is not None:
                    result.client_ms.append(turn.first_packet_latency_ms)
                x_turn = turn.response.x_turn
                if x_turn is not None and x_turn.timings is not None:
                    sent = x_turn.timings.stages_ms.get("first_audio_sent")
                    if sent is not None:
                        result.server_ms.append(sent)
    except Exception as exc:  # a talker's failure is a finding, reported below
        result.failures.append(f"talker {index}: {type(exc).__name__}: {exc}")


async def attempt_websocket(ws_url: str, flood: Flood) -> None:
    started = time.monotonic()
    try:
        ws = await connect(ws_url, open_timeout=30)
    except InvalidStatus as refused:
        flood.outcomes[f"websocket {refused.response.status_code}"] += 1
        flood.refusal_ms.append(1000 * (time.monotonic() - started))
        return
    except Exception as exc:
        flood.outcomes[f"websocket {type(exc).__name__}"] += 1
        return
    flood.outcomes["websocket admitted"] += 1
    flood.held.append(ws)


async def attempt_offer(http: httpx.AsyncClient, offer: bytes, flood: Flood) -> None:
    started = time.monotonic()
    try:
        reply = await http.post(
            "/v1/realtime/calls", content=offer, headers={"Content-Type": "application/sdp"}
        )
    except httpx.HTTPError as exc:
        flood.outcomes[f"webrtc {type(exc).__name__}"] += 1
        return
    if reply.status_code == 201:
        flood.outcomes["webrtc admitted"] += 1
    else:
        flood.outcomes[f"webrtc {reply.status_code}"] += 1
        flood.refusal_ms.append(1000 * (time.monotonic() - started))


async def flood_service(ws_url: str, http_url: str, args: argparse.Namespace, flood: Flood) -> None:
    await asyncio.sleep(args.flood_after)
    offer = (await make_offer()).encode()
    total = args.attempts + args.offers
    interval = args.flood_seconds / total
    kinds = ["ws"] * args.attempts + ["rtc"] * args.offers
    kinds = [kinds[i] for i in np.random.default_rng(7).permutation(total)]
    async with httpx.AsyncClient(
        base_url=http_url, timeout=30, limits=httpx.Limits(max_connections=200)
    ) as http:
        tasks = []
        start = time.monotonic()
        for i, kind in enumerate(kinds):
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            coro = (
                attempt_websocket(ws_url, flood)
                if kind == "ws"
                else attempt_offer(http, offer, flood)
            )
            tasks.append(asyncio.create_task(coro))
        await asyncio.gather(*tasks)
    await asyncio.sleep(max(0.0, args.seconds - (time.monotonic() - start) - args.flood_after))
    for ws in flood.held:
        with contextlib.suppress(Exception):
            await ws.close()


def flood_process(ws_url: str, http_url: str, args: argparse.Namespace) -> Flood:
    """The flood runs in a process of its own, as it would come from other machines: its
    client work must not delay the talkers' event loop, which times their first packets."""
    flood = Flood()
    asyncio.run(flood_service(ws_url, http_url, args, flood))
    flood.held.clear()  # closed; a connection does not cross processes
    return flood


async def run_once(
    service: ServiceProcess,
    args: argparse.Namespace,
    utterances: list[np.ndarray],
    with_flood: bool,
) -> tuple[Talk, Flood]:
    result = Talk()
    deadline = time.monotonic() + args.seconds
    talkers = [talk(service, utterances, i, deadline, result) for i in range(args.talkers)]
    if not with_flood:
        await asyncio.gather(*talkers)
        return result, Flood()
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
        flood = asyncio.get_running_loop().run_in_executor(
            pool, flood_process, service.ws_url, service.http_url, args
        )
        _, flooded = await asyncio.gather(asyncio.gather(*talkers), flood)
    return result, flooded


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talkers", type=int, default=20)
    parser.add_argument("--max-sessions", type=int, default=100)
    parser.add_argument("--attempts", type=int, default=1000)
    parser.add_argument("--offers", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--flood-after", type=float, default=10.0)
    parser.add_argument("--flood-seconds", type=float, default=10.0)
    args = parser.parse_args()
    utterances = [synthesize(sentence, RATE) for sentence in SENTENCES]
    log = Path(tempfile.mkdtemp(prefix="hostile-")) / "serve.log"
    service = ServiceProcess(
        "--engine",
        "sim",
        "--tts",
        "simulated",
        "--turn-detection",
        "server_vad",
        "--sim-reasoning-tokens",
        "20",
        "--sim-answer-tokens",
        "30",
        "--max-sessions",
        str(args.max_sessions),
        log_path=log,
    )
    with service:
        quiet, _ = await run_once(service, args, utterances, with_flood=False)
        await asyncio.sleep(12)  # admitted offers from nothing; settle
        loud, flood = await run_once(service, args, utterances, with_flood=True)
        async with httpx.AsyncClient(timeout=10) as http:
            metrics = (await http.get(f"{service.http_url}/metrics")).text
    refused = [
        line
        for line in metrics.splitlines()
        if line.startswith("step_realtime_sessions_refused_total")
    ]
    print("\nHOSTILE LOAD (engine and first TTS chunk SIMULATED: --engine sim --tts simulated)")
    print(
        f"{args.talkers} talkers, --max-sessions {args.max_sessions}, flood of "
        f"{args.attempts} WebSocket handshakes + {args.offers} WebRTC offers over "
        f"{args.flood_seconds:g} s"
    )
    for outcome, count in sorted(flood.outcomes.items()):
        print(f"  {outcome}: {count}")
    print(
        f"  time to a refusal: p50 {percentile(flood.refusal_ms, 50):.1f} ms, "
        f"p99 {percentile(flood.refusal_ms, 99):.1f} ms, max {max(flood.refusal_ms or [0]):.1f} ms"
    )
    print("  server: " + "; ".join(refused))
    for name, q, lo in (
        ("at the client", quiet.client_ms, loud.client_ms),
        ("at the server (x_turn: end of turn to first audio sent)", quiet.server_ms,
         loud.server_ms),
    ):  # fmt: skip
        q99, l99 = percentile(q, 99), percentile(lo, 99)
        print(
            f"talkers' first packet {name}: quiet p50 {percentile(q, 50):.0f} / p99 {q99:.0f} "
            f"ms ({len(q)} turns); flood p50 {percentile(lo, 50):.0f} / p99 {l99:.0f} ms "
            f"({len(lo)} turns): p99 ratio {l99 / q99:.2f}x (target <= 1.2x)"
        )
    for failure in (quiet.failures + loud.failures)[:10]:
        print("  " + failure)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
