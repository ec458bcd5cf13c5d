"""``step-realtime bench``: its arguments, and the run from them (load, report, JSON, plots)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

from rich.console import Console

from realtime.bench.audio_set import (
    BUILTIN_PHRASES,
    DEFAULT_VOICE,
    AudioSetError,
    Utterance,
    builtin_set,
    default_cache_dir,
    load_wav_dir,
)
from realtime.bench.compare import compare_results, print_comparison
from realtime.bench.context import (
    RunContext,
    ServiceUnreachable,
    client_info,
    git_revision,
    probe_server,
    utc_now,
)
from realtime.bench.report import LiveProgress, print_summary
from realtime.bench.results import BenchResults, ResultsError, read_results, write_results
from realtime.bench.runner import LoadPlan, LoadRunner
from realtime.bench.scenarios import TurnSettings
from realtime.bench.transports import (
    TRANSPORT_NAMES,
    ServiceEndpoints,
    build_transport,
    service_endpoints,
)
from realtime.client.client import API_KEY_VARIABLE
from realtime.client.connection import DEFAULT_OPEN_TIMEOUT_S, DEFAULT_URL
from realtime.client.turn import DEFAULT_TRAILING_SILENCE_MS

DEFAULT_TURNS = 3
EXIT_OK = 0
EXIT_PROBLEMS = 1  # the run finished, but more turns failed than --max-error-rate allows
EXIT_UNUSABLE = 2  # unreachable service, no session could open, bad arguments or input
EXIT_INTERRUPTED = 130
_PROBE_TIMEOUT_S = 5.0


def _session_levels(text: str) -> tuple[int, ...]:
    try:
        levels = tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like 1,10,50, got {text!r}") from None
    if not levels or min(levels) < 1:
        raise argparse.ArgumentTypeError(f"every level needs at least 1 session, got {text!r}")
    return levels


def _positive(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {text}")
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``bench`` command's arguments (``main_bench`` reads them), and ``bench compare``."""
    target = parser.add_argument_group("target")
    target.add_argument(
        "--url", default=DEFAULT_URL,
        help="the service's Realtime endpoint, ws://HOST:PORT/v1/realtime; its /healthz and "
        "/v1/realtime/calls are found from it (default: %(default)s)",
    )  # fmt: skip
    target.add_argument(
        "--transport", choices=TRANSPORT_NAMES, default="websocket",
        help="websocket (base64 PCM events) or webrtc (Opus tracks, oai-events data channel)",
    )  # fmt: skip
    target.add_argument(
        "--webrtc-allow-loopback", action="store_true",
        help="offer ICE candidates on 127.0.0.1 (aioice leaves them out); on by default when "
        "the URL's host is a loopback address",
    )  # fmt: skip
    target.add_argument(
        "--api-key", default=os.environ.get(API_KEY_VARIABLE),
        help=f"the service's API key or an ek_ client secret (default: ${API_KEY_VARIABLE})",
    )  # fmt: skip
    target.add_argument(
        "--session-json", metavar="JSON",
        help='a partial session object sent with session.update when each session opens, '
        'e.g. \'{"speaking": {"policy": "after-think"}}\'',
    )  # fmt: skip

    load = parser.add_argument_group("load")
    load.add_argument(
        "--sessions", type=_session_levels, default=(1,), metavar="N[,N...]",
        help="concurrent sessions; several comma-separated levels run one after the other "
        "(a sweep, e.g. 1,10,50) (default: 1)",
    )  # fmt: skip
    load.add_argument(
        "--turns",
        type=int,
        default=None,
        help=f"turns per session (default: {DEFAULT_TURNS}, or unlimited with --duration)",
    )
    load.add_argument(
        "--duration", type=_positive, default=None, metavar="SECONDS",
        help="per level, start no new turn after this long",
    )  # fmt: skip
    load.add_argument(
        "--ramp-up", type=_non_negative, default=1.0, metavar="SECONDS",
        help="spread the sessions' starts over this long (default: %(default)s)",
    )  # fmt: skip
    load.add_argument(
        "--pause", type=_non_negative, default=LoadPlan.pause_s, metavar="SECONDS",
        help="pause between a session's turns (default: %(default)s)",
    )  # fmt: skip
    load.add_argument(
        "--barge-in", action="store_true",
        help="every turn talks over its reply: the next utterance starts --barge-in-after-ms "
        "after the reply's first audio",
    )  # fmt: skip
    load.add_argument(
        "--barge-in-after-ms", type=_non_negative, default=TurnSettings.barge_in_after_ms,
        help="how much of the reply is heard before the user talks over it "
        "(default: %(default)s)",
    )  # fmt: skip

    audio = parser.add_argument_group("audio")
    audio.add_argument(
        "--audio", type=Path, metavar="DIR",
        help="say the WAV files in DIR (any rate, mono or not); default: a built-in set "
        "spoken by espeak-ng",
    )  # fmt: skip
    audio.add_argument(
        "--phrase", action="append", metavar="TEXT",
        help="a phrase for the built-in set (repeat for several; replaces the default phrases)",
    )  # fmt: skip
    audio.add_argument("--voice", default=DEFAULT_VOICE, help="espeak-ng voice of the built-in set")
    audio.add_argument(
        "--audio-cache", type=Path, metavar="DIR",
        help=f"where synthesized phrases are kept (default: {default_cache_dir()})",
    )  # fmt: skip
    audio.add_argument(
        "--silence-ms", type=_non_negative, default=DEFAULT_TRAILING_SILENCE_MS,
        help="silence streamed after each utterance at most, like an open microphone; it "
        "stops when the reply is done (default: %(default)s)",
    )  # fmt: skip

    limits = parser.add_argument_group("limits")
    limits.add_argument(
        "--turn-timeout", type=_positive, default=30.0, metavar="SECONDS",
        help="wait this long for a reply after its utterance (default: %(default)s)",
    )  # fmt: skip
    limits.add_argument(
        "--open-timeout", type=_positive, default=DEFAULT_OPEN_TIMEOUT_S, metavar="SECONDS",
        help="opening a session (and reaching /healthz, at most 5 s) (default: %(default)s)",
    )  # fmt: skip
    limits.add_argument(
        "--max-error-rate", type=_non_negative, default=0.0,
        help="exit 1 when a larger fraction of turns fails or times out (default: %(default)s)",
    )  # fmt: skip

    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, metavar="JSON", help="write every sample here")
    output.add_argument("--plot", type=Path, metavar="DIR", help="write PNG charts here")
    output.add_argument("--no-progress", action="store_true", help="no live progress display")

    commands = parser.add_subparsers(dest="bench_command", metavar="{compare}")
    compare = commands.add_parser(
        "compare",
        help="compare two result files",
        description="Print two runs' percentiles side by side with differences and ratios "
        "(b / a), per concurrency level.",
    )
    compare.add_argument("a", type=Path, help="results JSON of the baseline run")
    compare.add_argument("b", type=Path, help="results JSON of the run to compare with it")


def _run(main: Callable[[], Coroutine[Any, Any, int]]) -> int:
    """Run on a loop of its own (uvloop when it is there, like the service). With a loop
    factory, ``asyncio.Runner`` leaves the thread's current event loop alone, so that
    ``main_bench`` can be called from a program (or test) that has one."""
    loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    try:
        import uvloop

        loop_factory = uvloop.new_event_loop
    except ImportError:
        pass
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(main())


def main_bench(args: argparse.Namespace) -> int:
    """Run ``bench`` (or ``bench compare``). Exit codes: 0 done; 1 too many failed turns;
    2 the service is unreachable, no session could open, or arguments/input are wrong."""
    if args.bench_command == "compare":
        return _compare(args.a, args.b)
    errors = Console(stderr=True)
    try:
        endpoints = service_endpoints(args.url)
    except ValueError as exc:
        errors.print(f"step-realtime bench: --url: {exc}", markup=False)
        return EXIT_UNUSABLE
    session_update: dict[str, Any] | None = None
    if args.session_json:
        try:
            session_update = json.loads(args.session_json)
        except json.JSONDecodeError as exc:
            errors.print(f"step-realtime bench: --session-json: {exc}", markup=False)
            return EXIT_UNUSABLE
        if not isinstance(session_update, dict):
            errors.print("step-realtime bench: --session-json must be a JSON object")
            return EXIT_UNUSABLE
    try:
        return _run(lambda: _bench(args, endpoints, session_update, Console(), errors))
    except KeyboardInterrupt:
        errors.print("step-realtime bench: interrupted; nothing written")
        return EXIT_INTERRUPTED


def _compare(a_path: Path, b_path: Path) -> int:
    try:
        a, b = read_results(a_path), read_results(b_path)
    except ResultsError as exc:
        Console(stderr=True).print(f"step-realtime bench compare: {exc}", markup=False)
        return EXIT_UNUSABLE
    print_comparison(compare_results(a, b), str(a_path), str(b_path), Console())
    return EXIT_OK


async def _utterances(args: argparse.Namespace) -> tuple[list[Utterance], str]:
    if args.audio is not None:
        utterances = await asyncio.to_thread(load_wav_dir, args.audio)
        return utterances, f"WAV files in {args.audio}"
    phrases = tuple(args.phrase) if args.phrase else BUILTIN_PHRASES
    cache = args.audio_cache or default_cache_dir()
    utterances = await builtin_set(cache, phrases, args.voice)
    return utterances, f"built-in: {len(phrases)} phrases spoken by espeak-ng ({args.voice})"


def _options(args: argparse.Namespace) -> dict[str, Any]:
    return {
        key: (str(value) if isinstance(value, Path) else value) for key, value in vars(args).items()
    }


async def _bench(
    args: argparse.Namespace,
    endpoints: ServiceEndpoints,
    session_update: dict[str, Any] | None,
    console: Console,
    errors: Console,
) -> int:
    try:
        server = await probe_server(endpoints.healthz, min(args.open_timeout, _PROBE_TIMEOUT_S))
    except ServiceUnreachable as exc:
        errors.print(f"step-realtime bench: {exc}", markup=False)
        return EXIT_UNUSABLE
    try:
        utterances, audio_source = await _utterances(args)
    except AudioSetError as exc:
        errors.print(f"step-realtime bench: {exc}", markup=False)
        return EXIT_UNUSABLE

    turns = args.turns if args.turns is not None else (None if args.duration else DEFAULT_TURNS)
    plan = LoadPlan(
        endpoints=endpoints,
        session_levels=args.sessions,
        turns=turns,
        duration_s=args.duration,
        ramp_up_s=args.ramp_up,
        open_timeout_s=args.open_timeout,
        turn=TurnSettings(
            timeout_s=args.turn_timeout,
            trailing_silence_ms=args.silence_ms,
            barge_in_after_ms=args.barge_in_after_ms,
        ),
        barge_in=args.barge_in,
        pause_s=args.pause,
        session_update=session_update,
    )
    context = RunContext(
        url=args.url,
        transport=args.transport,
        server=server,
        simulated=server.simulated,
        client=client_info(),
        git_revision=await asyncio.to_thread(git_revision),
        started_at=utc_now(),
        session_levels=list(args.sessions),
        turns_per_session=turns,
        duration_s=args.duration,
        ramp_up_s=args.ramp_up,
        barge_in=args.barge_in,
        audio=audio_source,
        utterances=[utterance.name for utterance in utterances],
        options=_options(args),
    )
    transport = build_transport(
        args.transport,
        allow_loopback=args.webrtc_allow_loopback or endpoints.loopback,
        api_key=args.api_key,
    )
    live = errors.is_terminal and not args.no_progress
    progress = LiveProgress(errors, live=live, simulated=server.simulated)
    with progress:
        levels = await LoadRunner(plan, transport, utterances, progress).run()

    samples = [sample for level in levels for sample in level.samples]
    context.finished_at = utc_now()
    context.load_average_at_end = client_info().load_average
    context.policies = sorted({sample.policy for sample in samples if sample.policy})
    context.simulated = server.simulated or any(sample.simulated for sample in samples)
    results = BenchResults(context=context, levels=levels)
    # Files first: the measurements survive a console that goes away (a closed pipe).
    paths: list[Path] = []
    if args.out is not None:
        await asyncio.to_thread(write_results, results, args.out)
    if args.plot is not None:
        from realtime.bench.plots import write_plots  # matplotlib: imported only when needed

        paths = await asyncio.to_thread(write_plots, results, args.plot)
    print_summary(results, console)
    if args.out is not None:
        console.print(f"results: {args.out}", markup=False)
    if paths:
        console.print(f"charts: {', '.join(str(path) for path in paths)}", markup=False)
    return _exit_code(results, args.max_error_rate, errors)


def _exit_code(results: BenchResults, max_error_rate: float, errors: Console) -> int:
    counts = [level.summary.counts for level in results.levels]
    attempts = sum(count.attempts for count in counts)
    if attempts and all(count.connect_errors == count.attempts for count in counts):
        first = next(
            (s.error for level in results.levels for s in level.samples if s.error), "unknown"
        )
        errors.print(f"step-realtime bench: no session could be opened: {first}", markup=False)
        return EXIT_UNUSABLE
    problems = sum(count.problems for count in counts)
    rate = problems / attempts if attempts else 1.0
    if rate > max_error_rate:
        errors.print(
            f"step-realtime bench: {problems} of {attempts} turns failed "
            f"({rate:.1%} > --max-error-rate {max_error_rate:.1%})",
            markup=False,
        )
        return EXIT_PROBLEMS
    return EXIT_OK
