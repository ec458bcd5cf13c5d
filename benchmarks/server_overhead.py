"""Server-added latency and barge-in stop time of the WebSocket service (issue 2's benchmark).

For each turn, a client streams an espeak-ng utterance in real time, then silence, as a
microphone would. The server-added latency is

    (first reply audio received - last voiced frame sent)      client first-packet latency
    - silence window                                           the turn detector's wait
    - engine time  (engine_request_sent -> first_reply_text)   as the server reports it
    - TTS time     (first_reply_text -> first_tts_audio)       as the server reports it

so what remains is what the gateway adds: VAD endpointing (down to the input frame that
completes the window), session and outbox work, the event loop, and the loopback network.
It is split into "endpointing" (silence window elapsed -> speech_stopped received) and
"after VAD".

Barge-in stop time: the client talks over the reply; measured from the VAD's speech start
to the last frame of the cut reply leaving the server (the server's histogram), and at the
client from ``speech_started`` to the last reply audio delta received.

    python benchmarks/server_overhead.py --sessions 1,50 --turns 4
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.prometheus import bucket_quantile, histogram, parse_metrics
from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import SENTENCES, synthesize
from benchmarks.harness.stats import percentile
from realtime.client import RealtimeClient, speak_turn
from realtime.client.events import ServerEvent

RATE = 24_000
BARGE_IN_PROMPT = "Tell me about the long history of the great city of Rome, please."
BARGE_IN_CUT = "Stop, that is enough."


@dataclass
class TurnSample:
    client_first_packet_ms: float
    server_added_ms: float
    endpointing_ms: float
    after_vad_ms: float
    engine_ms: float
    tts_ms: float


@dataclass
class LevelResult:
    sessions: int
    samples: list[TurnSample] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)


async def one_session(url: str, turns: int, speech: list[np.ndarray], result: LevelResult,
                      start_delay_s: float) -> None:  # fmt: skip
    await asyncio.sleep(start_delay_s)
    async with RealtimeClient.connect(url) as client:
        for index in range(turns):
            pcm = speech[(index + int(start_delay_s * 1000)) % len(speech)]
            try:
                turn = await speak_turn(client, pcm, RATE, trailing_silence_ms=8000, timeout=60)
            except Exception as exc:
                result.failures.append(f"{type(exc).__name__}: {exc}")
                continue
            x_turn = turn.response.x_turn
            latency = turn.first_packet_latency_ms
            stopped_at = turn.speech_stopped_at
            if x_turn is None or latency is None or stopped_at is None:
                result.failures.append("turn without timings")
                continue
            stages = x_turn.timings.stages_ms
            silence = x_turn.timings.silence_window_ms or 0.0
            engine = stages["first_reply_text"] - stages["engine_request_sent"]
            tts = stages["first_tts_audio"] - stages["first_reply_text"]
            endpointing = 1000.0 * (stopped_at - turn.last_voiced_sent_at) - silence
            added = latency - silence - engine - tts
            result.samples.append(
                TurnSample(latency, added, endpointing, added - endpointing, engine, tts)
            )


async def run_level(url: str, sessions: int, turns: int, speech: list[np.ndarray]) -> LevelResult:
    result = LevelResult(sessions)
    rng = random.Random(sessions)
    # Independent speakers: each session starts at a random moment within 3 s.
    delays = [0.0] + [rng.uniform(0.0, 3.0) for _ in range(sessions - 1)]
    await asyncio.gather(*(one_session(url, turns, speech, result, d) for d in delays))
    return result


async def barge_in_trials(url: str, trials: int) -> list[float]:
    """Client-side: speech_started received -> last audio delta of the cut reply received."""
    prompt, cut = synthesize(BARGE_IN_PROMPT, RATE), synthesize(BARGE_IN_CUT, RATE)
    stops: list[float] = []
    for _ in range(trials):
        async with RealtimeClient.connect(url) as client:
            events: list[ServerEvent] = []

            async def record(
                client: RealtimeClient = client, events: list[ServerEvent] = events
            ) -> None:
                async for event in client.events():
                    events.append(event)

            reader = asyncio.create_task(record())
            await client.stream_audio(prompt, sample_rate=RATE)
            stop = asyncio.Event()
            silence = asyncio.create_task(client.send_silence(20_000, stop=stop))
            async with asyncio.timeout(60):
                # The reader task fills ``events``; poll it.
                while not any(e.type == "response.output_audio.delta" for e in events):  # noqa: ASYNC110
                    await asyncio.sleep(0.005)
            await asyncio.sleep(0.3)  # let the reply play a little
            stop.set()
            await silence
            await client.stream_audio(cut, sample_rate=RATE)
            await client.send_silence(1500)
            reader.cancel()
            cut_response = next(e for e in events if e.type == "response.created").raw["response"][
                "id"
            ]
            started = [e for e in events if e.type == "input_audio_buffer.speech_started"]
            if len(started) < 2:
                continue
            barge_at = started[1].received_at
            cut_audio = [
                e.received_at
                for e in events
                if e.type == "response.output_audio.delta" and e.raw["response_id"] == cut_response
            ]
            last_audio = max(cut_audio, default=barge_at)
            stops.append(max(0.0, 1000.0 * (last_audio - barge_at)))
    return stops


def server_barge_in_p50(metrics_url: str) -> tuple[float, int]:
    """Median of the server's barge-in stop histogram (bucket upper bound), and its count."""
    samples = parse_metrics(httpx.get(metrics_url, timeout=5).text)
    buckets, count, _ = histogram(samples, "step_realtime_barge_in_stop_seconds")
    return 1000.0 * bucket_quantile(buckets, count, 0.5), int(count)


def print_table(results: list[LevelResult]) -> None:
    print("\nserver-added latency (ms) = client first packet - silence window - engine - TTS")
    header = f"{'sessions':>8} {'turns':>5} {'fail':>4} | {'added p50':>9} {'p99':>7} | " \
             f"{'endpoint p50':>12} {'after-VAD p50':>13} | {'client FP p50':>13} {'p99':>7} | " \
             f"{'engine p50':>10} {'tts p50':>7}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for r in results:

        def p(name: str, q: float, samples: list[TurnSample] = r.samples) -> float:
            return percentile([getattr(x, name) for x in samples], q)

        print(
            f"{r.sessions:>8} {len(r.samples):>5} {len(r.failures):>4} | "
            f"{p('server_added_ms', 50):>9.1f} {p('server_added_ms', 99):>7.1f} | "
            f"{p('endpointing_ms', 50):>12.1f} {p('after_vad_ms', 50):>13.1f} | "
            f"{p('client_first_packet_ms', 50):>13.1f} {p('client_first_packet_ms', 99):>7.1f} | "
            f"{p('engine_ms', 50):>10.1f} {p('tts_ms', 50):>7.1f}"
        )
        for failure in sorted(set(r.failures))[:3]:
            print(f"{'':>8} failure: {failure}")


async def main_async(args: argparse.Namespace) -> None:
    speech = [synthesize(text, RATE) for text in SENTENCES]
    levels = [int(n) for n in args.sessions.split(",")]
    # A fixed silence window, so that what is left after subtracting it is the gateway's.
    serve_args = ("--turn-detection", "server_vad", *args.serve_arg)
    with ServiceProcess(*serve_args, log_path=Path(args.log)) as service:
        results = []
        for sessions in levels:
            started = time.monotonic()
            results.append(await run_level(service.ws_url, sessions, args.turns, speech))
            print(f"{sessions} sessions: {time.monotonic() - started:.1f} s", file=sys.stderr)
        print_table(results)
        stops = await barge_in_trials(service.ws_url, args.barge_in_trials)
        server_p50, count = server_barge_in_p50(f"{service.http_url}/metrics")
        print(f"\nbarge-in stop time over {len(stops)} trials (1 session):")
        print(f"  server, VAD speech start -> last cut frame sent: p50 <= {server_p50:.0f} ms "
              f"(histogram bucket bound, {count} barge-ins)")  # fmt: skip
        if stops:
            print(f"  client, speech_started received -> last cut frame received: "
                  f"p50 {statistics.median(stops):.1f} ms, max {max(stops):.1f} ms")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", default="1,50", help="concurrency levels, comma separated")
    parser.add_argument("--turns", type=int, default=4, help="turns per session per level")
    parser.add_argument("--barge-in-trials", type=int, default=5)
    parser.add_argument("--log", default="/tmp/step-realtime-bench-serve.log")
    parser.add_argument("--serve-arg", action="append", default=[],
                        help="extra argument for `step-realtime serve` (repeatable)")  # fmt: skip
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
