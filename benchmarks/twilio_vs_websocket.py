"""Benchmark: first-packet latency over the Twilio Media Streams path against the realtime
WebSocket, same utterances, same service.

Each turn streams an espeak-ng utterance in real time, then silence, as a caller would; the
service (echo engine, espeak-ng, silero VAD, on 127.0.0.1) ends the turn and answers. Turns
alternate between the paths, utterance by utterance, each on a fresh connection (setup is
not timed). First-packet latency is measured at the client from the moment the utterance's
last voiced sample was sent:

- realtime WebSocket, session in ``audio/pcmu`` both ways: each 20 ms frame an
  ``input_audio_buffer.append``; to the first ``response.output_audio.delta``;
- Twilio (this script plays Twilio: ``connected``, ``start``, each 20 ms frame a ``media``
  message): to the first ``media`` message back.

The audio is the same bytes on both paths (espeak-ng at 8 kHz, μ-law), so the VAD and the
engine get the same input; both include the VAD's silence window (500 ms) and the server's
engine and TTS time. By default the engine and TTS are the simulated ones with fixed
timings (SIMULATED, and said so in the output), so that what differs is the transports
themselves; ``--echo`` uses the echo engine and espeak-ng instead. Twilio's own network
and jitter buffer are not here: this is 127.0.0.1.

    .venv/bin/python benchmarks/twilio_vs_websocket.py [--rounds 3] [--echo]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import SENTENCES, silence, synthesize
from benchmarks.harness.stats import percentile
from realtime.client.turn import voiced_end
from realtime.transports.twilio import TWILIO_MEDIA_STREAM_PATH
from tokenizer.g711 import ulaw_encode

PHONE_RATE = 8_000
PHONE_FRAME = 160  # 20 ms
TURN_TIMEOUT_S = 60.0


async def stream_turn(
    url: str,
    opening: list[str],
    frame_message: Callable[[str], str],
    is_reply_audio: Callable[[dict[str, Any]], bool],
    pcm: np.ndarray,
) -> float:
    """Send ``opening``, then ``pcm`` (8 kHz) and silence as 20 ms μ-law frames in real time,
    until the first reply audio; ms from the last voiced frame sent to that audio."""
    voiced_frames = -(-voiced_end(pcm, PHONE_RATE) // PHONE_FRAME)
    audio = np.concatenate([pcm, silence(TURN_TIMEOUT_S, PHONE_RATE)])
    async with websockets.connect(url, max_size=None) as ws:
        for message in opening:
            await ws.send(message)
        first_audio: asyncio.Future[float] = asyncio.get_running_loop().create_future()

        async def listen() -> None:
            async for raw in ws:
                if is_reply_audio(json.loads(raw)) and not first_audio.done():
                    first_audio.set_result(time.monotonic())

        listener = asyncio.create_task(listen())
        last_voiced_sent = 0.0
        began = time.monotonic()
        try:
            for index in range(len(audio) // PHONE_FRAME):
                frame = audio[index * PHONE_FRAME : (index + 1) * PHONE_FRAME]
                await ws.send(frame_message(base64.b64encode(ulaw_encode(frame)).decode()))
                if index + 1 == voiced_frames:
                    last_voiced_sent = time.monotonic()
                if first_audio.done():
                    break
                await asyncio.sleep(max(0.0, began + (index + 1) * 0.02 - time.monotonic()))
            if not first_audio.done():
                raise RuntimeError("no reply audio")
        finally:
            listener.cancel()
            await asyncio.gather(listener, return_exceptions=True)
    return 1000.0 * (first_audio.result() - last_voiced_sent)


async def websocket_turn(service: ServiceProcess, pcm: np.ndarray) -> float:
    pcmu = {"type": "audio/pcmu"}
    update = {"audio": {"input": {"format": pcmu}, "output": {"format": pcmu}}}
    return await stream_turn(
        service.ws_url,
        [json.dumps({"type": "session.update", "session": update})],
        lambda payload: json.dumps({"type": "input_audio_buffer.append", "audio": payload}),
        lambda event: event.get("type") == "response.output_audio.delta",
        pcm,
    )


async def twilio_turn(service: ServiceProcess, pcm: np.ndarray) -> float:
    sid = "MZbenchmark"
    media_format = {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1}
    start = {"streamSid": sid, "callSid": "CAbenchmark", "mediaFormat": media_format}
    return await stream_turn(
        f"ws://127.0.0.1:{service.port}{TWILIO_MEDIA_STREAM_PATH}",
        [
            json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}),
            json.dumps({"event": "start", "streamSid": sid, "start": start}),
        ],
        lambda payload: json.dumps(
            {"event": "media", "streamSid": sid, "media": {"payload": payload}}
        ),
        lambda message: message.get("event") == "media",
        pcm,
    )


def row(name: str, values: list[float]) -> str:
    return (
        f"{name:<34} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f}"
        f" {statistics.fmean(values):>8.1f} {len(values):>4}"
    )


SIMULATED_BACKENDS = (
    "--engine", "sim", "--sim-reasoning-tokens", "16", "--sim-answer-tokens", "24",
    "--sim-length-jitter", "0", "--tts", "simulated",
)  # fmt: skip


async def main(rounds: int, echo: bool) -> None:
    lead = 0.3

    def utterances(rate: int) -> list[np.ndarray]:
        return [np.concatenate([silence(lead, rate), synthesize(s, rate)]) for s in SENTENCES]

    for_phone = utterances(PHONE_RATE)
    websocket: list[float] = []
    twilio: list[float] = []
    log = Path(tempfile.mkdtemp(prefix="twilio-vs-ws-")) / "serve.log"
    backends = () if echo else SIMULATED_BACKENDS
    with ServiceProcess("--turn-detection", "server_vad", *backends, log_path=log) as service:
        await websocket_turn(service, for_phone[0])  # warm up both paths once
        await twilio_turn(service, for_phone[0])
        for round_index in range(rounds):
            for index in range(len(SENTENCES)):
                phone_first = (round_index + index) % 2 == 1
                for use_phone in (phone_first, not phone_first):
                    if use_phone:
                        twilio.append(await twilio_turn(service, for_phone[index]))
                    else:
                        websocket.append(await websocket_turn(service, for_phone[index]))
            print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)

    print(f"first-packet latency, {len(SENTENCES)} utterances x {rounds} rounds (ms, 127.0.0.1)")
    if not echo:
        print("engine and TTS SIMULATED (fixed timings); transports, codecs and VAD real")
    print(f"{'':<34} {'p50':>8} {'p99':>8} {'mean':>8} {'n':>4}")
    print(row("realtime WebSocket (audio/pcmu)", websocket))
    print(row("Twilio Media Streams (mu-law 8k)", twilio))
    p50 = percentile(twilio, 50) / percentile(websocket, 50)
    p99 = percentile(twilio, 99) / percentile(websocket, 99)
    print(f"ratio Twilio / WebSocket: p50 {p50:.3f}, p99 {p99:.3f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3, help="passes over the utterances")
    parser.add_argument(
        "--echo",
        action="store_true",
        help="the echo engine and espeak-ng (real, but their CPU time swamps the transports"
        " on a busy machine) instead of the simulated engine and TTS",
    )
    arguments = parser.parse_args()
    asyncio.run(main(arguments.rounds, arguments.echo))
