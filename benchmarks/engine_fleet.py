"""Engine fleet under load, SIMULATED: two simulated vLLM servers (``sim_vllm_server.py``: no
model runs; vLLM's scheduling limits with ``SimParams`` timings) behind one gateway
(``--engine vllm`` with both URLs), sessions ramped from 10 to 200.

Each session is a WebSocket with ``output_modalities: ["text"]`` and no VAD (so that the
gateway's CPU, not the fleet, is never the limit on this 2-core machine): it creates a user
text item and ``response.create``, waits for ``response.done``, pauses ``--think-s`` (±50 %),
and again. "First packet" here is ``response.create`` sent to the first
``response.output_text.delta`` received: the engine's queueing, prefill and reasoning, which
are what the fleet's load changes. Sessions open spread over ``--ramp-s``; a refused
handshake (503, the gateway's admission by engine capacity) is counted and not retried.

Reported per level, with engine admission on (the gateway's defaults: a server is
overloaded at 2 waiting requests; with ``--server-max-sessions N`` also full at N sessions
from the gateway) and off (limits no load reaches): sessions admitted and
refused, turns, first packet p50/p99. Target: with admission on, the admitted sessions'
p99 stays within 1.5x its 10-session value while refusals absorb the excess.

Then a failover drill: 50 sessions with admission on, one server killed mid-run: the turns
lost (each with an error event) and the time until new turns all succeed.

    .venv/bin/python benchmarks/engine_fleet.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.ports import free_port
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.stats import percentile as pct

SIM_SERVER = Path(__file__).resolve().parent / "sim_vllm_server.py"


@dataclass
class Level:
    sessions: int
    admitted: int = 0
    refused: int = 0
    first_packet_ms: list[float] = field(default_factory=list)
    errors: list[tuple[float, str]] = field(default_factory=list)  # (at, code)
    ok_at: list[float] = field(default_factory=list)


def start_sim_server(max_num_seqs: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(SIM_SERVER), "--port", str(port), "--max-num-seqs", str(max_num_seqs)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}/v1"


async def talk(url: str, level: Level, stop_at: float, think_s: float, seed: int) -> None:
    rng = random.Random(seed)
    try:
        ws = await connect(url, open_timeout=30, max_size=None)
    except InvalidStatus as refused:
        if refused.response.status_code == 503:
            level.refused += 1
            return
        raise
    level.admitted += 1
    async with ws:
        setup = {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "output_modalities": ["text"],
                "audio": {"input": {"turn_detection": None}},
            },
        }
        await ws.send(json.dumps(setup))
        turn = 0
        while time.monotonic() < stop_at:
            item = {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": f"Question {turn} from {seed}?"}],
                },
            }
            await ws.send(json.dumps(item))
            sent = time.monotonic()
            await ws.send(json.dumps({"type": "response.create"}))
            first: float | None = None
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), 120))
                kind = event["type"]
                if kind == "response.output_text.delta" and first is None:
                    first = time.monotonic()
                    level.first_packet_ms.append(1000 * (first - sent))
                elif kind == "error" and event["error"].get("type") == "server_error":
                    level.errors.append((time.monotonic(), event["error"].get("code", "")))
                elif kind == "response.done":
                    if event["response"]["status"] == "completed":
                        level.ok_at.append(time.monotonic())
                    break
            turn += 1
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))


async def run_level(
    url: str,
    sessions: int,
    args: argparse.Namespace,
    kill: tuple[float, subprocess.Popen[bytes]] | None = None,
) -> tuple[Level, float]:
    level = Level(sessions)
    start = time.monotonic()
    stop_at = start + args.ramp_s + args.hold_s

    async def opened_later(index: int) -> None:
        await asyncio.sleep(args.ramp_s * index / sessions)
        await talk(url, level, stop_at, args.think_s, index)

    async def killer() -> None:
        if kill is None:
            return
        await asyncio.sleep(kill[0])
        kill[1].send_signal(signal.SIGKILL)

    killed_at = start + (kill[0] if kill else 0.0)
    results = await asyncio.gather(
        *(opened_later(i) for i in range(sessions)), killer(), return_exceptions=True
    )
    failures = [r for r in results if isinstance(r, BaseException)]
    for failure in failures[:3]:
        print(f"  session failed: {type(failure).__name__}: {failure}", flush=True)
    return level, killed_at


def gateway(
    urls: list[str], admission: bool, log: Path, max_sessions: int | None = None
) -> ServiceProcess:
    limits = ["--server-max-waiting", "1000000", "--server-max-kv-usage", "1"]
    if admission:
        limits = ["--server-max-sessions", str(max_sessions)] if max_sessions else []
    args = [
        "--engine",
        "vllm",
        "--tts",
        "simulated",
        "--turn-detection",
        "server_vad",
        "--health-interval-s",
        "1",
        "--max-sessions",
        "1000",
        "--max-events-per-s",
        "1000",
        *limits,
    ]
    for url in urls:
        args += ["--engine-url", url]
    return ServiceProcess(*args, log_path=log)


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--levels", default="10,25,50,100,200")
    parser.add_argument("--max-num-seqs", type=int, default=16)
    parser.add_argument("--ramp-s", type=float, default=10.0)
    parser.add_argument("--hold-s", type=float, default=30.0)
    parser.add_argument("--think-s", type=float, default=4.0)
    parser.add_argument(
        "--server-max-sessions", type=int, default=None,
        help="with admission on, also the gateway's --server-max-sessions (a capacity "
        "measured ahead); default: only the servers' gauges",
    )  # fmt: skip
    args = parser.parse_args()
    levels = [int(n) for n in args.levels.split(",")]
    logs = Path(tempfile.mkdtemp(prefix="engine-fleet-"))
    print(
        "ENGINE FLEET: everything here is SIMULATED (two simulated vLLM servers, "
        f"{args.max_num_seqs} seqs each; text replies; logs in {logs})",
        flush=True,
    )
    table: dict[bool, list[Level]] = {}
    for admission in (True, False):
        servers = [start_sim_server(args.max_num_seqs) for _ in range(2)]
        try:
            log = logs / f"gw-{admission}.log"
            with gateway([u for _, u in servers], admission, log, args.server_max_sessions) as gw:
                table[admission] = []
                for sessions in levels:
                    level, _ = await run_level(gw.ws_url, sessions, args)
                    table[admission].append(level)
                    print(
                        f"  admission {'on ' if admission else 'off'} {sessions:4d} sessions: "
                        f"{level.admitted} admitted, {level.refused} refused, "
                        f"{len(level.first_packet_ms)} turns, first packet p50 "
                        f"{pct(level.first_packet_ms, 50):.0f} ms p99 "
                        f"{pct(level.first_packet_ms, 99):.0f} ms",
                        flush=True,
                    )
                    await asyncio.sleep(3)
        finally:
            for process, _ in servers:
                process.kill()
                process.wait()
    for admission, rows in table.items():
        base = pct(rows[0].first_packet_ms, 99)
        worst = max(pct(r.first_packet_ms, 99) for r in rows)
        print(
            f"admission {'on' if admission else 'off'}: worst p99 {worst:.0f} ms = "
            f"{worst / base:.2f}x the {rows[0].sessions}-session p99 ({base:.0f} ms); refused "
            f"{sum(r.refused for r in rows)} (target with admission on: <= 1.5x)"
        )

    print("failover drill (SIMULATED): 50 sessions, one of two servers killed mid-run")
    servers = [start_sim_server(args.max_num_seqs) for _ in range(2)]
    try:
        with gateway([u for _, u in servers], True, logs / "gw-failover.log") as gw:
            kill_after = args.ramp_s + args.hold_s / 2
            level, killed_at = await run_level(gw.ws_url, 50, args, (kill_after, servers[1][0]))
    finally:
        for process, _ in servers:
            process.kill()
            process.wait()
    lost = [at for at, _ in level.errors if at >= killed_at]
    recovered = max(lost) - killed_at if lost else 0.0
    after = [at for at in level.ok_at if at > (max(lost) if lost else killed_at)]
    print(
        f"  turns lost after the kill: {len(lost)} (each with an error event: "
        f"{sorted({code for _, code in level.errors})}); last failure "
        f"{recovered:.1f} s after the kill; {len(after)} turns completed after it"
    )
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
