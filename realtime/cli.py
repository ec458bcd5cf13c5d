"""The ``step-realtime`` command: ``serve`` the service, ``call`` it with a WAV file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence

from realtime import __version__


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    from realtime.engines.echo import DEFAULT_REPLY
    from realtime.engines.factory import ENGINE_NAMES
    from tts.factory import TTS_NAMES

    net = parser.add_argument_group("network")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    net.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: %(default)s)"
    )
    net.add_argument(
        "--max-event-mb", type=float, default=8.0,
        help="largest client event accepted, in MiB; bigger ones get an error event "
        "(default: %(default)s)",
    )  # fmt: skip

    engine = parser.add_argument_group("engine")
    engine.add_argument(
        "--engine", choices=ENGINE_NAMES, default="echo",
        help="reasoning engine; 'echo' (default) is a pocketsphinx+espeak-ng loopback for "
        "trying the service, not a reasoning model",
    )  # fmt: skip
    engine.add_argument(
        "--echo-reply", default=DEFAULT_REPLY,
        help="what the echo engine answers; '{transcript}' is replaced by what it heard "
        "(default: %(default)r)",
    )  # fmt: skip
    engine.add_argument("--instructions", default="", help="default system instructions")

    speech = parser.add_argument_group("speech")
    speech.add_argument("--tts", choices=TTS_NAMES, default="espeak", help="TTS backend")
    speech.add_argument(
        "--espeak-voice", default="en-us", help="espeak-ng voice (default: %(default)s)"
    )
    speech.add_argument(
        "--espeak-wpm", type=int, default=175, help="espeak-ng speed, words per minute"
    )

    turns = parser.add_argument_group("turns and pacing")
    turns.add_argument(
        "--audio-lead-ms", type=float, default=200.0,
        help="how far ahead of real time reply audio is sent (default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--max-buffered-ms", type=float, default=2000.0,
        help="reply audio synthesized ahead of playback at most (default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--no-incremental-prefill", action="store_true",
        help="do not hand the engine audio chunks while the user is still speaking",
    )  # fmt: skip
    turns.add_argument(
        "--prefill-chunk-seconds", type=float, default=2.0,
        help="close a listen-while-thinking chunk every this many seconds of speech",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from realtime.engines.factory import EngineOptions
    from realtime.protocol.session_config import SessionConfig
    from realtime.server.app import create_app
    from realtime.server.resources import ServiceOptions
    from realtime.session.services import SessionSettings
    from tts.factory import TtsOptions

    max_event_bytes = int(args.max_event_mb * 1024 * 1024)
    options = ServiceOptions(
        engine=EngineOptions(name=args.engine, echo_reply=args.echo_reply),
        tts=TtsOptions(
            name=args.tts, espeak_voice=args.espeak_voice, espeak_words_per_minute=args.espeak_wpm
        ),
        session=SessionSettings(
            default_config=SessionConfig(instructions=args.instructions),
            max_event_bytes=max_event_bytes,
            audio_lead_ms=args.audio_lead_ms,
            max_buffered_reply_ms=args.max_buffered_ms,
            incremental_prefill=not args.no_incremental_prefill,
            prefill_chunk_s=args.prefill_chunk_seconds,
        ),
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    uvicorn.run(
        create_app(options),
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws="websockets-sansio",
        # Leave room above our own limit so oversize events get an error event, not a close.
        ws_max_size=4 * max_event_bytes,
        log_level=args.log_level,
        lifespan="on",
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    from realtime.call import add_call_arguments

    parser = argparse.ArgumentParser(
        prog="step-realtime",
        description="Real-time speech-to-speech service for Step-Audio-R1 "
        "(OpenAI Realtime API over WebSocket).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the service",
        description="Run the service: GET /healthz, GET /metrics, WebSocket /v1/realtime.",
    )
    _add_serve_arguments(serve)
    call = commands.add_parser(
        "call",
        help="hold one spoken turn with a running service",
        description="Send a WAV file to the service as a microphone would, save the spoken "
        "reply, and print the transcript, the reply and the first-packet latency.",
    )
    add_call_arguments(call)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "call":
        from realtime.call import main_call

        return asyncio.run(main_call(args))
    return 2


if __name__ == "__main__":
    sys.exit(main())
