"""The ``call`` command: say a WAV file to a running service, save the reply, report its timings."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from rich.console import Console
from rich.table import Table
from rich.text import Text

from realtime.client.client import API_KEY_VARIABLE, RealtimeClient
from realtime.client.connection import DEFAULT_CHUNK_MS, DEFAULT_OPEN_TIMEOUT_S, DEFAULT_URL
from realtime.client.errors import (
    RealtimeConnectionClosed,
    RealtimeConnectionError,
    RealtimeServerError,
)
from realtime.client.turn import (
    DEFAULT_TRAILING_SILENCE_MS,
    DEFAULT_TURN_TIMEOUT_S,
    ResponseResult,
    TurnResult,
    speak_turn,
)
from realtime.protocol.session_config import SUPPORTED_RATES
from tokenizer.pcm import AudioFormatError, read_wav, write_wav


@dataclass
class CallReport:
    """The outcome of one call: what was sent, what came back, and how fast."""

    url: str
    wav_path: Path
    out_path: Path
    wav_rate: int
    input_ms: float
    turn: TurnResult

    @property
    def response(self) -> ResponseResult:
        return self.turn.response

    @property
    def ok(self) -> bool:
        return self.response.status == "completed" and not self.response.errors


async def run_call(
    url: str,
    wav_path: str | Path,
    out_path: str | Path,
    *,
    realtime: bool = True,
    silence_ms: float = DEFAULT_TRAILING_SILENCE_MS,
    timeout: float = DEFAULT_TURN_TIMEOUT_S,  # noqa: ASYNC109 (the turn's own bound)
    open_timeout: float = DEFAULT_OPEN_TIMEOUT_S,
    chunk_ms: float = DEFAULT_CHUNK_MS,
    api_key: str | None = None,
) -> CallReport:
    """Hold one turn: say ``wav_path`` (then silence) to ``url``; write the reply to ``out_path``.

    A WAV at a rate the service accepts (16 or 24 kHz) is sent as is, after setting the
    session's input rate to match; other rates are resampled to 24 kHz. Raises
    ``RealtimeConnectionError`` (unreachable), ``RealtimeServerError``, ``TimeoutError``,
    ``RealtimeConnectionClosed`` and, for a bad input file, ``AudioFormatError``/``OSError``.
    """
    wav_path, out_path = Path(wav_path), Path(out_path)
    pcm, wav_rate = await asyncio.to_thread(read_wav, wav_path)
    session = None
    if wav_rate in SUPPORTED_RATES:
        session = {"audio": {"input": {"format": {"type": "audio/pcm", "rate": wav_rate}}}}
    async with RealtimeClient.connect(
        url, session=session, open_timeout=open_timeout, api_key=api_key
    ) as client:
        turn = await speak_turn(
            client,
            pcm,
            wav_rate,
            trailing_silence_ms=silence_ms,
            realtime=realtime,
            timeout=timeout,
            chunk_ms=chunk_ms,
        )
    reply = turn.response
    await asyncio.to_thread(write_wav, out_path, reply.audio, reply.sample_rate)
    return CallReport(
        url=url,
        wav_path=wav_path,
        out_path=out_path,
        wav_rate=wav_rate,
        input_ms=1000.0 * len(pcm) / wav_rate,
        turn=turn,
    )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f} ms"


def print_call_report(report: CallReport, console: Console) -> None:
    """Print what was heard, what was answered, and the turn's timings."""
    reply = report.response
    summary = Table.grid(padding=(0, 2))
    summary.add_column(style="bold")
    summary.add_column(overflow="fold")
    summary.add_row("server", Text(report.url))
    # Server text goes in as Text so that brackets in it are not read as rich markup.
    if reply.user_transcript is not None:
        summary.add_row("you said", Text(reply.user_transcript))
    else:
        summary.add_row("you said", Text("(no transcript)", style="dim"))
    if reply.reasoning:
        summary.add_row("reasoning", Text(reply.reasoning, style="italic"))
    summary.add_row(
        "reply", Text(reply.reply_text) if reply.reply_text else Text("(empty)", style="dim")
    )
    summary.add_row(
        "reply audio",
        Text(f"{report.out_path} ({reply.audio_ms / 1000:.2f} s at {reply.sample_rate} Hz)"),
    )
    summary.add_row("status", Text(reply.status, style="" if report.ok else "red"))
    for error in reply.errors:
        summary.add_row("error", Text(error.error.describe(), style="red"))
    latency = Text(_ms(report.turn.first_packet_latency_ms), style="bold")
    if report.turn.realtime:
        latency.append("  (end of speech sent → first reply audio received)", style="dim")
    else:
        latency.append("  (audio sent faster than real time: not a latency figure)", style="yellow")
    summary.add_row("first-packet latency", latency)
    x_turn = reply.x_turn
    if x_turn is not None:
        engine = Text(" / ".join(part for part in (x_turn.engine, x_turn.model) if part) or "-")
        if x_turn.simulated:
            engine.append(" (SIMULATED timings)", style="yellow")
        summary.add_row("engine", engine)
        if x_turn.policy:
            summary.add_row("speaking policy", Text(x_turn.policy))
    console.print(summary)

    timings = x_turn.timings if x_turn is not None else None
    if timings is None or not timings.stages_ms:
        return
    console.print(Text(f"server stage timings, ms from {timings.origin}:", style="bold"))
    stages = Table()
    stages.add_column("stage")
    stages.add_column("ms", justify="right")
    for stage, ms in timings.stages_ms.items():
        stages.add_row(stage, f"{ms:.1f}")
    console.print(stages)
    notes = []
    if timings.silence_window_ms is not None:
        notes.append(f"VAD silence window {timings.silence_window_ms:.0f} ms")
    if timings.speech_end_audio_ms is not None:
        notes.append(f"speech ended at {timings.speech_end_audio_ms:.0f} ms of input audio")
    if notes:
        console.print("[dim]" + "; ".join(notes) + "[/]")


def add_call_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``call`` command's arguments (``main_call`` reads them)."""
    parser.add_argument("wav", type=Path, help="the utterance to say, a PCM WAV file")
    parser.add_argument(
        "--out", type=Path, default=Path("reply.wav"),
        help="where to write the spoken reply (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--url", default=DEFAULT_URL, help="the service's Realtime WebSocket (default: %(default)s)"
    )
    parser.add_argument(
        "--no-realtime", dest="realtime", action="store_false",
        help="send the audio as fast as possible instead of at real-time pace",
    )  # fmt: skip
    parser.add_argument(
        "--silence-ms", type=float, default=DEFAULT_TRAILING_SILENCE_MS,
        help="silence streamed after the utterance at most, like an open microphone; it stops "
        "when the reply is done (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TURN_TIMEOUT_S,
        help="seconds to wait for the reply after the utterance (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--chunk-ms", type=float, default=DEFAULT_CHUNK_MS,
        help="audio sent per input_audio_buffer.append (default: %(default)s)",
    )  # fmt: skip
    parser.add_argument(
        "--api-key", default=os.environ.get(API_KEY_VARIABLE),
        help=f"the service's API key or an ek_ client secret (default: ${API_KEY_VARIABLE})",
    )  # fmt: skip


async def main_call(args: argparse.Namespace) -> int:
    """Run ``call``: 0 when the reply completed, 1 on a server error, timeout or bad input,
    2 when the server cannot be reached or refuses the connection (a 401 gets a hint about
    --api-key)."""
    console = Console()
    try:
        report = await run_call(
            args.url,
            args.wav,
            args.out,
            realtime=args.realtime,
            silence_ms=args.silence_ms,
            timeout=args.timeout,
            chunk_ms=args.chunk_ms,
            api_key=args.api_key,
        )
    except RealtimeConnectionError as exc:
        print(f"step-realtime call: {exc}", file=sys.stderr)
        if exc.http_status == 401:
            given = "the key given was refused" if args.api_key else "no key was given"
            print(
                f"hint: the service requires an API key ({given}): pass --api-key KEY or set "
                f"${API_KEY_VARIABLE} to one of the service's keys or an ek_ client secret",
                file=sys.stderr,
            )
        return 2
    except (
        RealtimeServerError,
        RealtimeConnectionClosed,
        TimeoutError,
        AudioFormatError,
        OSError,
    ) as exc:
        print(f"step-realtime call: {exc}", file=sys.stderr)
        return 1
    print_call_report(report, console)
    return 0 if report.ok else 1
