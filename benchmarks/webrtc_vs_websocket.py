"""Benchmark: first-packet latency over WebRTC and over WebSocket, same utterances, same service.

Each turn streams an espeak-ng utterance in real time, then silence, as a microphone would;
the service (echo engine, espeak-ng, silero VAD, on 127.0.0.1) ends the turn and answers.
Turns alternate between the transports, utterance by utterance, each on a fresh session
(connection setup is not timed). First-packet latency is measured at the client from the
moment the utterance's last voiced sample was sent:

- WebSocket (the SDK, ``RealtimeClient``): to the first ``response.output_audio.delta``.
- WebRTC (``RealtimeWebRtcClient``, aiortc): "first packet" is the arrival of
  ``output_audio_buffer.started``, which the server sends on the data channel in the same
  20 ms tick as the first reply RTP packet; "first audio" is the first decoded reply frame,
  after aiortc's receive jitter buffer and the Opus decoder.

Both include the VAD's silence window (500 ms) and the server's own part (speech_stopped to
first_audio_sent, from ``response.done``: VAD, engine, TTS), which dominate and vary with
the machine's load; the "transport share" takes both out, turn by turn, leaving what the
transport adds (uplink to the VAD, endpointing, downlink).

    .venv/bin/python benchmarks/webrtc_vs_websocket.py [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness.service import ServiceProcess
from benchmarks.harness.speech import SENTENCES, silence, synthesize
from benchmarks.harness.stats import percentile
from realtime.client import RealtimeClient, speak_turn
from realtime.client.connection import RealtimeConnection
from realtime.client.turn import TurnResult
from realtime.client.webrtc import RealtimeWebRtcClient

RATE = 24_000
TURN_TIMEOUT_S = 60.0


@dataclass
class Figures:
    """Milliseconds per turn, one list per measure."""

    first_packet: list[float] = field(default_factory=list)
    first_audio: list[float] = field(default_factory=list)
    server: list[float] = field(default_factory=list)
    end_of_turn: list[float] = field(default_factory=list)
    # first_packet - server part - silence window: what the transport (and endpointing) add
    transport: list[float] = field(default_factory=list)


def record(turn: TurnResult, figures: Figures, webrtc: bool) -> None:
    response = turn.response
    if response.status != "completed" or turn.first_packet_latency_ms is None:
        raise RuntimeError(f"turn did not complete with audio: {response.status}")
    last_voiced = turn.last_voiced_sent_at
    audio_ms = turn.first_packet_latency_ms
    if webrtc:
        started = next(
            e.received_at for e in response.events if e.type == "output_audio_buffer.started"
        )
        first_packet = 1000.0 * (started - last_voiced)
    else:
        first_packet = audio_ms
    figures.first_packet.append(first_packet)
    figures.first_audio.append(audio_ms)
    stopped_at = turn.speech_stopped_at
    if stopped_at is not None:
        figures.end_of_turn.append(1000.0 * (stopped_at - last_voiced))
    x_turn = response.x_turn
    if x_turn is not None and x_turn.timings is not None:
        stages = x_turn.timings.stages_ms
        if "first_audio_sent" in stages:
            figures.server.append(stages["first_audio_sent"])
            window = x_turn.timings.silence_window_ms or 0.0
            figures.transport.append(first_packet - stages["first_audio_sent"] - window)


async def one_turn(service: ServiceProcess, webrtc: bool, pcm: np.ndarray) -> TurnResult:
    client: RealtimeConnection
    if webrtc:
        client = await RealtimeWebRtcClient.connect(service.http_url, allow_loopback=True)
    else:
        client = await RealtimeClient.connect(service.ws_url)
    try:
        return await speak_turn(client, pcm, RATE, timeout=TURN_TIMEOUT_S)
    finally:
        await client.close()


def row(name: str, values: list[float]) -> str:
    return (
        f"{name:<44} {percentile(values, 50):>8.1f} {percentile(values, 99):>8.1f}"
        f" {statistics.fmean(values) if values else float('nan'):>8.1f} {len(values):>4}"
    )


async def main(rounds: int) -> None:
    utterances = [np.concatenate([silence(0.3, RATE), synthesize(s, RATE)]) for s in SENTENCES]
    websocket, webrtc = Figures(), Figures()
    log = Path(tempfile.mkdtemp(prefix="webrtc-vs-ws-")) / "serve.log"
    serve_args = ("--webrtc-allow-loopback", "--turn-detection", "server_vad")
    with ServiceProcess(*serve_args, log_path=log) as service:
        await one_turn(service, True, utterances[0])  # warm up both paths once
        await one_turn(service, False, utterances[0])
        for round_index in range(rounds):
            for index, pcm in enumerate(utterances):
                order = (False, True) if (round_index + index) % 2 == 0 else (True, False)
                for use_webrtc in order:
                    turn = await one_turn(service, use_webrtc, pcm)
                    record(turn, webrtc if use_webrtc else websocket, use_webrtc)
            print(f"round {round_index + 1}/{rounds} done", file=sys.stderr)

    print(f"first-packet latency, {len(SENTENCES)} utterances x {rounds} rounds (ms)")
    print(f"{'':<44} {'p50':>8} {'p99':>8} {'mean':>8} {'n':>4}")
    print(row("WebSocket: first audio delta", websocket.first_packet))
    print(row("WebRTC: first packet (buffer.started)", webrtc.first_packet))
    print(row("WebRTC: first decoded audio", webrtc.first_audio))
    print(row("WebSocket: server speech_stopped->audio sent", websocket.server))
    print(row("WebRTC: server speech_stopped->audio sent", webrtc.server))
    print(row("WebSocket: last voiced -> speech_stopped", websocket.end_of_turn))
    print(row("WebRTC: last voiced -> speech_stopped", webrtc.end_of_turn))
    print(row("WebSocket: transport share (see below)", websocket.transport))
    print(row("WebRTC: transport share (see below)", webrtc.transport))
    pairs = (
        ("first packet", webrtc.first_packet, websocket.first_packet),
        ("first decoded audio", webrtc.first_audio, websocket.first_packet),
        ("transport share", webrtc.transport, websocket.transport),
    )
    for label, ours, theirs in pairs:
        p50 = percentile(ours, 50) / percentile(theirs, 50)
        p99 = percentile(ours, 99) / percentile(theirs, 99)
        print(f"ratio WebRTC / WebSocket, {label}: p50 {p50:.3f}, p99 {p99:.3f}")
    print(
        "transport share = first packet - server part (speech_stopped -> first_audio_sent)"
        " - silence window: endpointing, uplink and downlink"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=4, help="passes over the utterances")
    asyncio.run(main(parser.parse_args().rounds))
