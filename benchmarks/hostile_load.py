"""Hostile load: a flood of WebSocket connection attempts and WebRTC offers against a service
with ``--max-sessions`` while real sessions talk. Excess attempts must be refused quickly,
and the real sessions must not notice.

The service (``--engine sim --tts simulated``: engine timings and the first TTS chunk are
SIMULATED; VAD, turn-taking, admission, both transports are real) runs on 127.0.0.1 with
``--max-sessions 100``. ``--talkers`` sessions (the SDK's ``RealtimeClient``) hold spoken
turns in a loop (espeak-ng utterances streamed in real time) for ``--seconds``, twice: once
quiet, once with a flood that starts ``--flood-after`` seconds in: ``--attempts`` WebSocket
handshakes and ``--offers`` WebRTC offers (one aiortc offer, posted again and again) spread
over ``--flood-seconds``. Flood connections that are admitted are held open until the run
ends; admitted offers never connect (their caller is gone) and are freed by the service.

Reported: attempts admitted and refused (by status), the time to a refusal (p50, p99), and
the talkers' first-packet p99 with and without the flood, as a ratio (target <= 1.2x).

    .venv/bin/python benchmarks/hostile_load.py
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime.client import RealtimeClient, speak_turn
from tests.realtime.transports.offers import make_offer
from tests.support.service import ServiceProcess
from tests.support.speech import synthesize

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


async def talk(
    service: ServiceProcess,
    utterances: list[np.ndarray],
    index: int,
    deadline: float,
    latencies: list[float],
    failures: list[str],
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
                    latencies.append(turn.first_packet_latency_ms)
    except Exception as exc:  # a talker's failure is a finding, reported below
        failures.append(f"talker {index}: {type(exc).__name__}: {exc}")


async def attempt_websocket(service: ServiceProcess, flood: Flood) -> None:
    started = time.monotonic()
    try:
        ws = await connect(service.ws_url, open_timeout=30)
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


async def flood_service(service: ServiceProcess, args: argparse.Namespace, flood: Flood) -> None:
    offer = (await make_offer()).encode()
    total = args.attempts + args.offers
    interval = args.flood_seconds / total
    kinds = ["ws"] * args.attempts + ["rtc"] * args.offers
    kinds = [kinds[i] for i in np.random.default_rng(7).permutation(total)]
    async with httpx.AsyncClient(
        base_url=service.http_url, timeout=30, limits=httpx.Limits(max_connections=200)
    ) as http:
        tasks = []
        start = time.monotonic()
        for i, kind in enumerate(kinds):
            await asyncio.sleep(max(0.0, start + i * interval - time.monotonic()))
            coro = (
                attempt_websocket(service, flood)
                if kind == "ws"
                else attempt_offer(http, offer, flood)
            )
            tasks.append(asyncio.create_task(coro))
        await asyncio.gather(*tasks)


async def run_once(
    service: ServiceProcess,
    args: argparse.Namespace,
    utterances: list[np.ndarray],
    with_flood: bool,
) -> tuple[list[float], Flood, list[str]]:
    latencies: list[float] = []
    failures: list[str] = []
    flood = Flood()
    deadline = time.monotonic() + args.seconds
    talkers = [
        talk(service, utterances, i, deadline, latencies, failures) for i in range(args.talkers)
    ]

    async def delayed_flood() -> None:
        await asyncio.sleep(args.flood_after)
        await flood_service(service, args, flood)

    await asyncio.gather(*talkers, *([delayed_flood()] if with_flood else []))
    for ws in flood.held:
        with contextlib.suppress(Exception):
            await ws.close()
    return latencies, flood, failures


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


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
        quiet, _, quiet_failures = await run_once(service, args, utterances, with_flood=False)
        await asyncio.sleep(12)  # admitted offers from nothing; settle
        loud, flood, loud_failures = await run_once(service, args, utterances, with_flood=True)
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
    q99, l99 = percentile(quiet, 99), percentile(loud, 99)
    print(
        f"talkers' first packet: quiet p50 {percentile(quiet, 50):.0f} / p99 {q99:.0f} ms "
        f"({len(quiet)} turns); flood p50 {percentile(loud, 50):.0f} / p99 {l99:.0f} ms "
        f"({len(loud)} turns): p99 ratio {l99 / q99:.2f}x (target <= 1.2x)"
    )
    for failure in (quiet_failures + loud_failures)[:10]:
        print("  " + failure)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
