"""The ``step-realtime`` command: ``serve`` the service, ``call`` it with a WAV file."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from realtime import __version__

if TYPE_CHECKING:
    from realtime.engines.sim import SimParams
    from realtime.webrtc_media.ice import IceServer


def _add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    from realtime.engines.echo import DEFAULT_REPLY
    from realtime.engines.factory import ENGINE_NAMES
    from realtime.engines.sim import TOOL_CALL_MODES, SimParams
    from realtime.engines.vllm.cli_args import add_vllm_arguments
    from realtime.protocol.client_events import DEFAULT_MAX_EVENT_BYTES
    from realtime.protocol.session_config import (
        DEFAULT_SILENCE_DURATION_MS,
        PHONE_CALLS_CANCEL_ECHO,
        SemanticVad,
    )
    from realtime.server.access_cli import add_access_arguments
    from realtime.session.outbox import DEFAULT_LEAD_MS
    from realtime.speaking.base import SpeakingParams
    from realtime.speaking.factory import POLICY_NAMES
    from realtime.turns.interruption import InterruptionParams
    from realtime.turns.turn_audio import DEFAULT_PREFILL_CHUNK_S
    from tts.cosyvoice_cli import add_cosyvoice_arguments
    from tts.factory import TTS_NAMES, TtsOptions

    # Defaults come from the modules that use them (not SessionSettings: its module loads
    # onnxruntime, which starts a thread, and --help must not).
    speaking_defaults = SpeakingParams()
    tts_defaults = TtsOptions()

    net = parser.add_argument_group("network")
    net.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: %(default)s)"
    )
    net.add_argument(
        "--port", type=int, default=8080, help="port to listen on (default: %(default)s)"
    )
    net.add_argument(
        "--ssl-certfile", metavar="PEM",
        help="serve HTTPS/WSS with this certificate (chain) file; browsers allow the "
        "microphone only on HTTPS pages or on localhost (needs --ssl-keyfile)",
    )  # fmt: skip
    net.add_argument("--ssl-keyfile", metavar="PEM", help="the private key of --ssl-certfile")
    net.add_argument(
        "--max-event-mb", type=float, default=DEFAULT_MAX_EVENT_BYTES / 1024 / 1024,
        help="largest client event accepted, in MiB; bigger ones get an error event "
        "(default: %(default)s)",
    )  # fmt: skip

    webrtc = parser.add_argument_group("WebRTC")
    webrtc.add_argument(
        "--ice-server", action="append", default=[], type=_ice_server, metavar="URL",
        help="STUN or TURN server for WebRTC calls, also given to the call page; repeatable. "
        "'stun:HOST[:PORT]' or 'turn:HOST[:PORT][?transport=udp|tcp],username=U,credential=C'. "
        "None by default (no STUN server is asked)",
    )  # fmt: skip
    webrtc.add_argument(
        "--webrtc-allow-loopback", action="store_true",
        help="offer 127.0.0.1 ICE candidates too (needed when loopback is the only interface)",
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
    add_vllm_arguments(parser)

    sim = parser.add_argument_group(
        "sim engine (--engine sim): a timing simulator; every figure it produces is SIMULATED",
        "Defaults: Step-Audio-R1 (Qwen2.5-32B decoder) on vLLM, TP=4, H100-class GPUs; "
        "sources in realtime/engines/sim.py.",
    )
    sim_defaults = SimParams()
    sim.add_argument(
        "--sim-profile", type=_sim_profile, metavar="FILE",
        help="JSON object of the simulator's figures (SimParams fields, such as "
        "benchmarks/gpu_check.py writes from measurements); --sim-* flags override it",
    )  # fmt: skip
    sim.add_argument(
        "--sim-prefill-tps", type=float, default=None,
        help="prefill throughput, prompt tokens per second "
        f"(default: {sim_defaults.prefill_tokens_per_s})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-ttft-ms", type=float, default=None,
        help=f"time to first token with nothing left to prefill (default: {sim_defaults.ttft_ms})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-itl-ms", type=float, default=None,
        help=f"inter-token latency of a lone stream (default: {sim_defaults.itl_ms})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-batch-slowdown", type=float, default=None,
        help="extra inter-token latency per other stream decoding at once, as a fraction "
        f"(default: {sim_defaults.batch_slowdown})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-reasoning-tokens", type=int, default=None,
        help=f"mean reasoning length in tokens (default: {sim_defaults.reasoning_tokens})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-answer-tokens", type=int, default=None,
        help=f"mean reply length in tokens (default: {sim_defaults.answer_tokens})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-length-jitter", type=float, default=None,
        help="lengths vary uniformly within this fraction of the mean "
        f"(default: {sim_defaults.length_jitter})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-seed", type=int, default=None,
        help=f"seed of the simulated words (default: {sim_defaults.seed})",
    )  # fmt: skip
    sim.add_argument(
        "--sim-tool-calls", choices=TOOL_CALL_MODES, default=None,
        help="'first-turn': a turn offered tools calls the first one before it answers, and "
        f"answers once the client has sent the call's output (default: {sim_defaults.tool_calls})",
    )  # fmt: skip

    speaking = parser.add_argument_group(
        "speaking policy", "When reply speech starts while the model is still reasoning."
    )
    speaking.add_argument(
        "--policy", choices=POLICY_NAMES, default=None,
        help="default speaking policy (a session may choose another with session.speaking): "
        "'after-think' speaks once reasoning is over; 'mps' (Mind-Paced Speaking) speaks "
        "after each formulation segment while reasoning goes on; 'speak-first' as 'mps' "
        "but starts speaking at once (default: 'speak-first' where the engine continues an "
        "assistant message, else 'after-think')",
    )  # fmt: skip
    speaking.add_argument(
        "--formulation-tokens", type=int, default=speaking_defaults.formulation_tokens,
        help="mps: reasoning tokens per formulation segment, Tc (default: %(default)s)",
    )  # fmt: skip
    speaking.add_argument(
        "--first-formulation-tokens", type=int, default=speaking_defaults.first_formulation_tokens,
        help="mps: reasoning tokens before the first articulation (default: Tc)",
    )  # fmt: skip
    speaking.add_argument(
        "--articulation-tokens", type=int, default=speaking_defaults.articulation_tokens,
        help="mps: reply tokens per articulation request, Tr (default: %(default)s)",
    )  # fmt: skip

    speech = parser.add_argument_group("speech")
    speech.add_argument(
        "--tts", choices=TTS_NAMES, default=tts_defaults.name,
        help="TTS backend; 'simulated' is espeak-ng with each reply's first audio delayed to "
        "--tts-first-chunk-ms, as a production streaming TTS would deliver it",
    )  # fmt: skip
    speech.add_argument(
        "--tts-first-chunk-ms", type=float, default=tts_defaults.first_chunk_ms,
        help="--tts simulated: SIMULATED latency of a reply's first audio chunk "
        "(default: %(default)s)",
    )  # fmt: skip
    speech.add_argument(
        "--espeak-voice", default=tts_defaults.espeak_voice,
        help="espeak-ng voice (default: %(default)s)",
    )  # fmt: skip
    speech.add_argument(
        "--espeak-wpm", type=int, default=tts_defaults.espeak_words_per_minute,
        help="espeak-ng speed, words per minute (default: %(default)s)",
    )  # fmt: skip
    add_cosyvoice_arguments(parser)
    add_access_arguments(parser)

    turns = parser.add_argument_group("turns and pacing")
    turns.add_argument(
        "--audio-lead-ms", type=float, default=DEFAULT_LEAD_MS,
        help="how far ahead of real time reply audio is sent (default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--max-buffered-ms", type=float, default=speaking_defaults.max_buffered_audio_ms,
        help="reply audio synthesized ahead of playback at most (default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--no-incremental-prefill", action="store_true",
        help="do not hand the engine audio chunks while the user is still speaking",
    )  # fmt: skip
    turns.add_argument(
        "--prefill-chunk-seconds", type=float, default=DEFAULT_PREFILL_CHUNK_S,
        help="close a listen-while-thinking chunk every this many seconds of speech",
    )  # fmt: skip
    turns.add_argument(
        "--turn-detection", choices=["semantic_vad", "server_vad"], default="semantic_vad",
        help="sessions' default end of turn: semantic_vad (Smart Turn v3.2 judges each pause) or "
        "server_vad (a fixed silence); clients may change it with session.update "
        "(default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--eagerness", choices=["low", "medium", "high", "auto"],
        default=SemanticVad().eagerness,
        help="semantic_vad's default eagerness (default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--silence-duration-ms", type=int, default=DEFAULT_SILENCE_DURATION_MS,
        help="server_vad's default silence window (default: %(default)s)",
    )  # fmt: skip
    turns.add_argument(
        "--no-speculative-start", action="store_true",
        help="do not start replies at candidate ends of a turn (held back until the turn is "
        "confirmed, dropped unseen if the user goes on)",
    )  # fmt: skip
    turns.add_argument(
        "--echo-cancellation", action="store_true",
        help="sessions cancel the reply's echo in their input by default "
        "(audio.input.x_echo_cancellation; clients may turn it off with session.update)",
    )  # fmt: skip
    turns.add_argument(
        "--phone-echo-cancellation", action=argparse.BooleanOptionalAction,
        default=PHONE_CALLS_CANCEL_ECHO,
        help="phone calls (Twilio) cancel the reply's echo on the server (default: on)",
    )  # fmt: skip
    turns.add_argument(
        "--interrupt-min-speech-ms", type=int, default=InterruptionParams().min_speech_ms,
        help="speech over a reply at least this long cuts it (barge-in); shorter speech "
        "(a cough, 'mm-hmm') only pauses it, and it resumes (default: %(default)s)",
    )  # fmt: skip
    telemetry = parser.add_argument_group("telemetry")
    telemetry.add_argument(
        "--otel-endpoint", metavar="URL",
        help="send OpenTelemetry traces (a span per session and per turn) to this OTLP "
        "collector, e.g. http://127.0.0.1:4318; without it, tracing is on only when "
        "OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is set",
    )  # fmt: skip
    telemetry.add_argument(
        "--otel-protocol", choices=["http/protobuf", "grpc"],
        help="OTLP transport (default: OTEL_EXPORTER_OTLP_PROTOCOL, else http/protobuf)",
    )  # fmt: skip
    parser.add_argument(
        "--log-level", default="info", choices=["debug", "info", "warning", "error"]
    )


def sim_params_of(args: argparse.Namespace) -> SimParams:
    """The sim engine's figures: defaults, then --sim-profile, then the --sim-* flags given."""
    from realtime.engines.sim_profile import sim_params_from

    return sim_params_from(
        args.sim_profile or {},
        {
            "prefill_tokens_per_s": args.sim_prefill_tps,
            "ttft_ms": args.sim_ttft_ms,
            "itl_ms": args.sim_itl_ms,
            "batch_slowdown": args.sim_batch_slowdown,
            "reasoning_tokens": args.sim_reasoning_tokens,
            "answer_tokens": args.sim_answer_tokens,
            "length_jitter": args.sim_length_jitter,
            "seed": args.sim_seed,
            "tool_calls": args.sim_tool_calls,
        },
    )


def _sim_profile(text: str) -> dict[str, object]:
    from realtime.engines.sim_profile import read_sim_profile

    try:
        return read_sim_profile(Path(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def _ice_server(text: str) -> IceServer:
    from realtime.webrtc_media.ice import IceServer, IceServerError

    try:
        return IceServer.parse(text)
    except IceServerError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _tls_problem(certfile: str | None, keyfile: str | None) -> str | None:
    if (certfile is None) != (keyfile is None):
        return "--ssl-certfile and --ssl-keyfile go together"
    for flag, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile)):
        if path is not None and not Path(path).is_file():
            return f"{flag} {path}: no such file"
    return None


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from realtime.engines.factory import EngineOptions, engine_capabilities
    from realtime.engines.vllm.cli_args import vllm_options_from
    from realtime.protocol.session_config import (
        AudioConfig,
        EchoCancellation,
        InputAudio,
        SemanticVad,
        ServerVad,
        SessionConfig,
    )
    from realtime.server.access_cli import access_options_from, rate_limits_from
    from realtime.server.app import create_app
    from realtime.server.drain import DrainingServer, drain_sessions
    from realtime.server.resources import ServiceOptions
    from realtime.session.services import SessionSettings
    from realtime.speaking.base import SpeakingParams
    from realtime.speaking.factory import default_policy_for, policy_names_for
    from realtime.telemetry.tracing import TracingOptions
    from realtime.transports.webrtc.options import WebRtcOptions
    from realtime.turns.input import TurnSettings
    from realtime.turns.interruption import InterruptionParams
    from tts.cosyvoice_cli import cosyvoice_options_from
    from tts.factory import TtsOptions

    capabilities = engine_capabilities(args.engine)
    offered = policy_names_for(capabilities)
    if args.policy is None:
        args.policy = default_policy_for(capabilities)
    if args.policy not in offered:
        print(
            f"step-realtime serve: error: the {args.engine} engine offers the speaking policies "
            f"{', '.join(offered)}, not {args.policy}",
            file=sys.stderr,
        )
        return 2
    try:
        SpeakingParams(
            formulation_tokens=args.formulation_tokens,
            articulation_tokens=args.articulation_tokens,
            max_buffered_audio_ms=args.max_buffered_ms,
            first_formulation_tokens=args.first_formulation_tokens,
        )
        sim = sim_params_of(args)
        vllm = vllm_options_from(args) if args.engine == "vllm" else None
        access = access_options_from(args)
    except ValueError as exc:
        print(f"step-realtime serve: error: {exc}", file=sys.stderr)
        return 2
    if (problem := _tls_problem(args.ssl_certfile, args.ssl_keyfile)) is not None:
        print(f"step-realtime serve: error: {problem}", file=sys.stderr)
        return 2
    cosyvoice = cosyvoice_options_from(args)
    if args.tts == "cosyvoice" and (problem := cosyvoice.problem()) is not None:
        print(f"step-realtime serve: error: {problem}", file=sys.stderr)
        return 2
    max_event_bytes = int(args.max_event_mb * 1024 * 1024)
    turn_detection = (
        SemanticVad(eagerness=args.eagerness)
        if args.turn_detection == "semantic_vad"
        else ServerVad(silence_duration_ms=args.silence_duration_ms)
    )
    options = ServiceOptions(
        engine=EngineOptions(name=args.engine, echo_reply=args.echo_reply, sim=sim, vllm=vllm),
        tts=TtsOptions(
            name=args.tts,
            espeak_voice=args.espeak_voice,
            espeak_words_per_minute=args.espeak_wpm,
            first_chunk_ms=args.tts_first_chunk_ms,
            cosyvoice=cosyvoice,
        ),
        session=SessionSettings(
            default_config=SessionConfig(
                instructions=args.instructions,
                audio=AudioConfig(
                    input=InputAudio(
                        turn_detection=turn_detection,
                        x_echo_cancellation=EchoCancellation() if args.echo_cancellation else None,
                    )
                ),
            ),
            phone_echo_cancellation=args.phone_echo_cancellation,
            max_event_bytes=max_event_bytes,
            max_session_s=60.0 * args.session_minutes,
            max_history_bytes=int(args.max_history_mb * 1024 * 1024),
            rate_limits=rate_limits_from(args),
            audio_lead_ms=args.audio_lead_ms,
            max_buffered_reply_ms=args.max_buffered_ms,
            incremental_prefill=not args.no_incremental_prefill,
            turns=TurnSettings(
                prefill_chunk_s=args.prefill_chunk_seconds,
                speculative_start=not args.no_speculative_start,
                interruption=InterruptionParams(min_speech_ms=args.interrupt_min_speech_ms),
            ),
            default_policy=args.policy,
            formulation_tokens=args.formulation_tokens,
            first_formulation_tokens=args.first_formulation_tokens,
            articulation_tokens=args.articulation_tokens,
        ),
        webrtc=WebRtcOptions(
            ice_servers=tuple(args.ice_server), allow_loopback=args.webrtc_allow_loopback
        ),
        tracing=TracingOptions(endpoint=args.otel_endpoint, protocol=args.otel_protocol),
    )
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # httpx logs every request at INFO: each engine request and each health check.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.root.level))
    if not access.keys:
        log = logging.getLogger("realtime.server")
        if args.insecure_no_auth:
            log.warning("NO AUTHENTICATION on %s:%d (--insecure-no-auth): anyone who reaches "
                        "this port can use the engine", args.host, args.port)  # fmt: skip
        else:
            log.info("no API key set: serving on loopback only, without authentication")
    app = create_app(options, access)
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port,
        loop="uvloop",
        ws="websockets-sansio",
        # Leave room above our own limit so oversize events get an error event, not a close.
        ws_max_size=4 * max_event_bytes,
        log_level=args.log_level,
        lifespan="on",
        forwarded_allow_ips=args.forwarded_allow_ips,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
    )

    def drain() -> Awaitable[None] | None:
        gate = getattr(app.state, "gate", None)  # set once the service is up
        return drain_sessions(gate, args.drain_timeout_s) if gate is not None else None

    server = DrainingServer(config, drain)
    server.run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    from realtime.call import add_call_arguments

    parser = argparse.ArgumentParser(
        prog="step-realtime",
        description="Real-time speech-to-speech service for Step-Audio-R1 "
        "(the OpenAI Realtime API over WebSocket and WebRTC).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        help="run the service",
        description="Run the service: the call page at /, GET /healthz, GET /metrics, "
        "POST /v1/realtime/client_secrets, WebSocket /v1/realtime, WebRTC POST "
        "/v1/realtime/calls, phone calls over Twilio Media Streams at WebSocket "
        "/v1/twilio/media-stream. SIGTERM drains (--drain-timeout-s).",
    )
    _add_serve_arguments(serve)
    call = commands.add_parser(
        "call",
        help="hold one spoken turn with a running service",
        description="Send a WAV file to the service as a microphone would, save the spoken "
        "reply, and print the transcript, the reply and the first-packet latency.",
    )
    add_call_arguments(call)
    from realtime.bench import add_bench_arguments

    bench = commands.add_parser(
        "bench",
        help="measure a running service's latency under load",
        description="Hold spoken turns with a running service from N concurrent sessions "
        "and report first-packet latency, time to full reply, barge-in stop time and the "
        "server's stage timings as percentiles; 'bench compare a.json b.json' compares runs.",
    )
    add_bench_arguments(bench)
    return parser


def _one_blas_thread() -> None:
    """Before numpy loads: one OpenBLAS thread. The service's matrix work is small and its
    parallelism is its sessions; and OpenBLAS's thread pool deadlocks (the whole service
    froze, or a worker spun forever) when the event loop forks a subprocess (espeak-ng, via
    uvloop's fork) while a worker thread (Smart Turn's features) is inside a BLAS call."""
    os.environ["OPENBLAS_NUM_THREADS"] = "1"


def main(argv: Sequence[str] | None = None) -> int:
    _one_blas_thread()
    args = build_parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)
    if args.command == "call":
        from realtime.call import main_call

        return asyncio.run(main_call(args))
    if args.command == "bench":
        from realtime.bench import main_bench

        return main_bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
